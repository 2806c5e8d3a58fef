"""Benchmarks: datasets, training, metrics, cost measurement, and the command-line runners."""
