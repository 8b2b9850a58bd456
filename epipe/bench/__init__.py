"""Benchmarks (`epipe bench`): each measures epipe and its baseline side by side, in one run
on one machine, and reports figures with their ratio."""
