"""Pure checkout domain: checkouts, quotes, tax, orders and the payment saga."""
