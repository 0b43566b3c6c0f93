"""The robustness evaluation's results artifact: its name and format tag, shared by the task
that writes it, the report that reads it and the dashboard (which must not import torch)."""

from __future__ import annotations

RESULTS_FORMAT = "sealroom.robustness/1"
RESULTS_ARTIFACT = "results"
