"""Throughput benchmark: paired FP8-vs-16-bit sweeps (sweep), engines and environment (runner),
saved history (store). CLI: python -m playground.bench --help."""
