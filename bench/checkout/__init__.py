"""PlaceOrder throughput and latency through gRPC beside the same run's bare gRPC echo rate."""
