"""The chassis per-request cost: a bare gRPC echo beside the same method through the chassis."""
