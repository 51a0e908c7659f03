"""The checkout service: carts, quotes with tax, and orders paid through a crash-safe saga."""
