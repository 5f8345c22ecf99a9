"""Benchmarks: `make bench` runs every `bench/bench_*.py` module's `main()`; each writes its figures
to `bench/results/<name>.json`. Benchmarks measure; tests check behaviour."""
