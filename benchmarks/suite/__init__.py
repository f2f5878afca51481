"""The sampler benchmark suite: problems, the runner and the report."""
