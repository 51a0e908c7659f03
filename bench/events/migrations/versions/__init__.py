"""Migration versions of the benchmark database."""
