"""Benchmarks (not tests): run them by hand, they print labelled figures."""
