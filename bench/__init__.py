"""Benchmarks (see README.md); each is a module run with `python -m bench.<name>`."""
