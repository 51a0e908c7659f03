"""Invoicing: invoices, credit notes, gapless numbering, rendering and tie-out."""
