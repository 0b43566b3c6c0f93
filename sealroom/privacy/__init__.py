"""Differential privacy: DP-SGD training, calibration, budgets across runs, release rules.

Import the submodules: ``calibrate`` (plans), ``trainer`` (DPTrainer, needs torch and
Opacus), ``budget`` (BudgetBook), ``release`` (filter_outputs), ``attack``
(membership inference on public data).
"""
