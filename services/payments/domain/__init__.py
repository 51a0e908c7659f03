"""The payments domain in pure Python: payments, refunds, attempts and routing rules."""
