"""Locust files and helpers of bench/bench_harness.py (not part of the package)."""
