"""The metric names a config may use, declared without torch.

``pipeline compose`` checks ``eval.metrics`` against this table; the metrics themselves
(:mod:`sealroom.train.metrics`) import torch and register only names declared here,
and a test checks that every declared name has a metric.
"""

from __future__ import annotations

from sealroom.pipeline.registry import Registry

METRIC_NAMES: Registry[str] = Registry.of_names(
    "metric",
    (
        "loss",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "macro_f1",
        "confusion_matrix",
        "dice",
        "jaccard",
        "iou",
        "hausdorff",
        "hausdorff95",
        "mse",
        "rmse",
        "mae",
        "r2",
    ),
)
