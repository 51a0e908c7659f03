"""Shared by bench/payments and bench/checkout: the mesh as separate processes, k6 runs, the
echo ceiling in its own process, and CPU time per process from /proc."""
