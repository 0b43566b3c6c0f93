"""What leaves the room: only output kinds and metrics the contract releases.

Under a privacy constraint only aggregate results leave: the confusion matrix (counts
per class pair), segmentation samples and any other per-example output stay inside
unless the contract's ``released_outputs`` names them explicitly (``confusion_matrix``,
``samples``); per-class results (counts, precision, recall, F1 per class, ``per_class.png``)
go with the confusion matrix. Metrics are filtered by ``constraints.metrics`` in
``metrics.json`` (final values, per-epoch train/val curves, per-class fields) and in the
training log, whose per-metric lines would otherwise repeat them.
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
    "per_class.png": "confusion_matrix",
}
PER_EXAMPLE_METRICS = {"confusion_matrix"}
_FIELD = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_ ]*): (?P<value>.*)$")
_PREFIXES = ("train ", "training ", "val ", "validation ", "test ")
_ALIASES = {"dice score": "dice", "iou": "jaccard"}
_STRUCTURE = {"epoch", "step", "samples"}  # counters, not statistics of the data


def _kind(name: str) -> str:
    from sealroom.train.run import output_kind

    return output_kind(name)


def filter_outputs(
    outputs: dict[str, bytes], constraints: Constraints, private: bool
) -> dict[str, bytes]:
    """The subset of ``outputs`` (with metrics trimmed) that the contract lets leave the room."""
    allowed_kinds = set(constraints.released_outputs)
    allowed_metrics = released_metrics(constraints, private)
    kept: dict[str, bytes] = {}
    for name, data in outputs.items():
        if _kind(name) not in allowed_kinds:
            continue
        explicit = PER_EXAMPLE_OUTPUTS.get(name)
        if private and explicit is not None and explicit not in allowed_kinds:
            continue
        if name == "metrics.json":
            data = _filter_metrics_json(data, allowed_metrics, per_class=not private)
        elif name == "training_log.txt":
            data = _filter_log(data, allowed_metrics)
        kept[name] = data
    return kept


def released_metrics(constraints: Constraints, private: bool) -> set[str]:
    """Metric names that may leave the room (in outputs, receipts and the operator's log)."""
    allowed = set(constraints.metrics)
    if private:
        allowed -= PER_EXAMPLE_METRICS - set(constraints.released_outputs)
    return allowed


def aggregate_only(outputs: dict[str, bytes]) -> dict[str, bytes]:
    """Drop per-example outputs and metrics: what a private run releases with no contract."""
    kept: dict[str, bytes] = {}
    for name, data in outputs.items():
        if name in PER_EXAMPLE_OUTPUTS:
            continue
        if name == "metrics.json":
            report = json.loads(data)
            allowed = set(report.get("metrics", {})) - PER_EXAMPLE_METRICS
            data = _filter_metrics_json(data, allowed | {"loss"}, per_class=False)
        kept[name] = data
    return kept


def _filter_metrics_json(data: bytes, allowed: set[str], per_class: bool) -> bytes:
    """``metrics.json`` with every statistic of a metric not in ``allowed`` removed.

    ``per_class`` False: per-class results leave only with the confusion matrix itself.
    """
    try:
        report: dict[str, Any] = json.loads(data)
    except ValueError:
        raise PrivacyError("metrics.json: not JSON; refusing to release it") from None
    metrics = report.get("metrics", {})
    report["metrics"] = {k: v for k, v in metrics.items() if k in allowed}
    for entry in report.get("history", []):
        for part in ("train", "val"):
            values = {k: v for k, v in entry.pop(part, {}).items() if k in allowed}
            if values:
                entry[part] = values
    if "confusion_matrix" not in allowed:
        report.pop("confusion_matrix", None)
    classes = report.pop("per_class", None)
    if classes and (per_class or "confusion_matrix" in allowed):
        from sealroom.train.classes import per_class_fields

        fields = per_class_fields(sorted(allowed))
        kept = {c: {k: v for k, v in r.items() if k in fields} for c, r in classes.items()}
        if fields:
            report["per_class"] = kept
    return json.dumps(report, indent=2, sort_keys=True).encode()


def release_line(line: str, allowed: set[str]) -> str | None:
    """A log line with every statistic the contract does not release removed.

    Lines are ``Key: value`` fields joined by `` | `` (``Epoch: 3 | Step: 50 | Train loss:
    0.345 | Accuracy: 0.887``). A field whose key names a metric (after dropping a
    ``Train``/``Val``/``Test`` prefix) stays only if that metric is released; a line whose
    statistics are all withheld is dropped. Other lines pass unchanged.
    """
    fields = line.split(" | ")
    kept: list[str] = []
    withheld = False
    for field in fields:
        match = _FIELD.match(field.strip())
        if match is None:
            kept.append(field)
            continue
        metric = _metric_name(match.group("key"))
        if metric is None or metric in allowed:
            kept.append(field)
        else:
            withheld = True
    if withheld and all(_metric_name(_key(f)) is None for f in kept):
        return None  # only counters would be left
    return " | ".join(kept)


def _key(field: str) -> str:
    match = _FIELD.match(field.strip())
    return match.group("key") if match else ""


def _metric_name(key: str) -> str | None:
    """The metric a log field reports, or None for counters and plain text."""
    name = key.strip().lower()
    if not name or name.split()[-1] in _STRUCTURE or name.endswith(" samples"):
        return None
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    name = _ALIASES.get(name, name)
    return name if _looks_like_metric(name) else None


def _looks_like_metric(name: str) -> bool:
    from sealroom.train.metrics import METRICS

    return name == "loss" or name in METRICS


def _filter_log(data: bytes, allowed: set[str]) -> bytes:
    lines = data.decode(errors="replace").splitlines()
    kept = [line for line in (release_line(x, allowed) for x in lines) if line is not None]
    return ("\n".join(kept) + "\n").encode()
