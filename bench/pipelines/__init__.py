"""Benchmark of pipelines: a 3-step chain through the dataflow vs. the client calling the models."""
