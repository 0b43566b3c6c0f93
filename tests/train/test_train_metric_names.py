"""Compose checks metric names against a torch-free table; every name there is a metric."""

from __future__ import annotations

from sealroom.train.metric_names import METRIC_NAMES
from sealroom.train.metrics import METRICS


def test_the_name_table_and_the_metrics_agree() -> None:
    assert list(METRIC_NAMES) == list(METRICS)


def test_an_unknown_metric_is_refused_with_the_known_names() -> None:
    try:
        METRIC_NAMES.get("acuracy", where="metrics[0]")
    except Exception as exc:
        assert "metrics[0]: unknown metric 'acuracy'" in str(exc)
        assert "accuracy" in str(exc)
    else:
        raise AssertionError("an unknown metric name was accepted")
