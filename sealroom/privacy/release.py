"""What leaves the room: only output kinds and metrics the contract releases.

Under a privacy constraint only aggregate results leave: the confusion matrix (counts
per class pair), segmentation samples and any other per-example output stay inside
unless the contract's ``released_outputs`` names them explicitly (``confusion_matrix``,
``samples``). Metrics are filtered by ``constraints.metrics`` in ``metrics.json`` and in
the training log, whose per-metric lines would otherwise repeat them.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from sealroom.errors import PrivacyError

if TYPE_CHECKING:
    from sealroom.contract.schema import Constraints

# Outputs that describe individual records or small groups of them rather than aggregates.
PER_EXAMPLE_OUTPUTS = {
    "confusion_matrix.png": "confusion_matrix",
    "segmentation_samples.png": "samples",
}
PER_EXAMPLE_METRICS = {"confusion_matrix"}
_METRIC_LINE = re.compile(r"^(Test|Validation|Training) ([A-Za-z0-9_]+): ")


def _kind(name: str) -> str:
    from sealroom.train.run import output_kind

    return output_kind(name)


def filter_outputs(
    outputs: dict[str, bytes], constraints: Constraints, private: bool
) -> dict[str, bytes]:
    """The subset of ``outputs`` (with metrics trimmed) that the contract lets leave the room."""
    allowed_kinds = set(constraints.released_outputs)
    allowed_metrics = set(constraints.metrics)
    if private:
        allowed_metrics -= PER_EXAMPLE_METRICS - allowed_kinds
    kept: dict[str, bytes] = {}
    for name, data in outputs.items():
        if _kind(name) not in allowed_kinds:
            continue
        explicit = PER_EXAMPLE_OUTPUTS.get(name)
        if private and explicit is not None and explicit not in allowed_kinds:
            continue
        if name == "metrics.json":
            data = _filter_metrics_json(data, allowed_metrics)
        elif name == "training_log.txt":
            data = _filter_log(data, allowed_metrics)
        kept[name] = data
    return kept


def aggregate_only(outputs: dict[str, bytes]) -> dict[str, bytes]:
    """Drop per-example outputs and metrics: what a private run releases with no contract."""
    kept: dict[str, bytes] = {}
    for name, data in outputs.items():
        if name in PER_EXAMPLE_OUTPUTS:
            continue
        if name == "metrics.json":
            report = json.loads(data)
            allowed = set(report.get("metrics", {})) - PER_EXAMPLE_METRICS
            data = _filter_metrics_json(data, allowed | {"loss"})
        kept[name] = data
    return kept


def _filter_metrics_json(data: bytes, allowed: set[str]) -> bytes:
    try:
        report: dict[str, Any] = json.loads(data)
    except ValueError:
        raise PrivacyError("metrics.json: not JSON; refusing to release it") from None
    metrics = report.get("metrics", {})
    report["metrics"] = {k: v for k, v in metrics.items() if k in allowed}
    if "loss" not in allowed:
        report.pop("history", None)  # per-epoch losses
    return json.dumps(report, indent=2, sort_keys=True).encode()


def _filter_log(data: bytes, allowed: set[str]) -> bytes:
    lines = data.decode(errors="replace").splitlines()
    kept = []
    for line in lines:
        match = _METRIC_LINE.match(line)
        if match and match.group(2) not in allowed:
            continue
        if line.startswith("Epoch:") and "loss" not in allowed:
            continue
        kept.append(line)
    return ("\n".join(kept) + "\n").encode()
