"""The reference robustness experiment: entry points (package data) and the plan that chains
them (train four models → attack each → score every set on every model → one report)."""
