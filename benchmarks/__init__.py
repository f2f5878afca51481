"""Benchmark scripts and the sampler benchmark suite (``python -m benchmarks``)."""
