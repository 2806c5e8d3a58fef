"""Benchmarks: datasets, training, cost measures, the experiment layer (run, grid, ablate, tune, sweeps, probes) and
the commands. Metrics live in ``tasks``, the record formats in ``records``."""
