"""Benchmarks of the lab itself and of its datapath (reported as ratios, never asserted)."""
