"""Payments benchmark: authorize+capture through the real service beside a bare gRPC echo."""
