"""Shared code of the benchmark workloads (not runnable on its own)."""
