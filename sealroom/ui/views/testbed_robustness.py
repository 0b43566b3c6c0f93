"""The reference robustness experiment's results, for the heatmap and the curves.

Each ``robustness-evaluate`` job commits a ``results`` JSON artifact (format
``sealroom.robustness/1``, written by ``sealroom.lab.tasks.robustness``): one row per
(source, target, method, ε) with clean and robust accuracy and the attack success rate.
Transfer between models is the success rate of one source's examples on another target;
the diagonal is white-box. The files are read here as plain JSON, each field checked,
instead of importing the task module (it loads the attack stack).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from pydantic import BaseModel

from sealroom.lab.store import LabStore
from sealroom.lab.store_records import JobRecord
from sealroom.lab.tasks.results_format import RESULTS_ARTIFACT, RESULTS_FORMAT

MAX_RESULTS_BYTES = 4 * 1024 * 1024
MAX_ROWS = 10_000
MAX_NAME = 64


@dataclass(frozen=True)
class Row:
    source: str
    target: str
    method: str
    eps: float
    clean_accuracy: float
    robust_accuracy: float
    attack_success_rate: float | None


class Heatmap(BaseModel):
    """Attack success rate of ``sources``' examples (rows) on ``targets`` (columns)."""

    method: str
    eps: float
    sources: list[str]
    targets: list[str]
    values: list[list[float | None]]


class Curve(BaseModel):
    """Robust accuracy against ε for one model under one method (ε 0: clean accuracy)."""

    model: str
    method: str
    kind: str  # "white-box" (source = target) or "worst" (minimum over sources)
    points: list[tuple[float, float]]


class RobustnessView(BaseModel):
    jobs: list[str]  # the evaluation jobs whose results are shown
    eps: float
    heatmaps: list[Heatmap]
    curves: list[Curve]


def _fraction(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_NAME else None


def parse_results(data: bytes) -> list[Row]:
    """The rows of one results file; malformed rows (or files) give nothing."""
    try:
        doc = json.loads(data)
    except ValueError:
        return []
    if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
        return []
    raw = doc.get("rows")
    if not isinstance(raw, list):
        return []
    rows = []
    for item in raw[:MAX_ROWS]:
        if not isinstance(item, dict):
            continue
        source, target, method = (_name(item.get(k)) for k in ("source", "target", "method"))
        eps = item.get("eps")
        clean, robust = (
            _fraction(item.get("clean_accuracy")),
            _fraction(item.get("robust_accuracy")),
        )
        rate = item.get("attack_success_rate")
        if source is None or target is None or method is None or clean is None or robust is None:
            continue
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps < 1e6:
            continue
        rows.append(Row(source, target, method, float(eps), clean, robust, _fraction(rate)))
    return rows


def _read(store: LabStore, job: JobRecord) -> list[Row]:
    from sealroom.lab.api import artifact_file

    for record in store.artifacts(job.id):
        if record.name != RESULTS_ARTIFACT or record.kind != "json":
            continue
        path = artifact_file(store.paths, str(record.path))
        if path is None or path.stat().st_size > MAX_RESULTS_BYTES:
            return []
        return parse_results(path.read_bytes())
    return []


def _ordered(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def pick_eps(rows: list[Row], wanted: float | None) -> float:
    """The ε of the heatmap: ``wanted`` (the report job's) when every source has it, else the
    largest ε every source attacked with, else the largest ε found."""
    grids: dict[str, set[float]] = {}
    for row in rows:
        grids.setdefault(row.source, set()).add(row.eps)
    common = set.intersection(*grids.values())
    if wanted is not None and wanted in common:
        return wanted
    return max(common) if common else max(r.eps for r in rows)


def heatmaps(rows: list[Row], eps: float) -> list[Heatmap]:
    sources = _ordered([r.source for r in rows])
    targets = _ordered([r.target for r in rows])
    out = []
    for method in _ordered([r.method for r in rows]):
        cells: dict[tuple[str, str], float] = {
            (r.source, r.target): r.attack_success_rate
            for r in rows
            if r.method == method and r.eps == eps and r.attack_success_rate is not None
        }
        values = [[cells.get((s, t)) for t in targets] for s in sources]
        out.append(Heatmap(method=method, eps=eps, sources=sources, targets=targets, values=values))
    return out


def curves(rows: list[Row]) -> list[Curve]:
    """Per model and method: white-box robust accuracy, and the worst over every source."""
    grid = sorted({r.eps for r in rows})
    out = []
    for method in _ordered([r.method for r in rows]):
        for target in _ordered([r.target for r in rows]):
            mine = [r for r in rows if r.target == target and r.method == method]
            if not mine:
                continue
            clean = sum(r.clean_accuracy for r in mine) / len(mine)
            white: list[tuple[float, float]] = [(0.0, clean)]
            worst: list[tuple[float, float]] = [(0.0, clean)]
            for eps in grid:
                cell = [r for r in mine if r.eps == eps]
                white.extend((eps, r.robust_accuracy) for r in cell if r.source == target)
                if cell:
                    worst.append((eps, min(r.robust_accuracy for r in cell)))
            if len(white) > 1:
                out.append(Curve(model=target, method=method, kind="white-box", points=white))
            out.append(Curve(model=target, method=method, kind="worst", points=worst))
    return out


def robustness(store: LabStore, jobs: list[JobRecord]) -> RobustnessView | None:
    """What the experiment's succeeded evaluation jobs recorded; None when there is none."""
    by_source: dict[str, tuple[str, list[Row]]] = {}  # a rerun's rows replace the old job's
    wanted: float | None = None
    for job in jobs:
        eps = job.parameters.get("eps")
        if job.entry_point == "robustness-report" and isinstance(eps, int | float):
            wanted = float(eps)
        if job.status != "succeeded":
            continue
        for row in _read(store, job):
            if by_source.get(row.source, ("",))[0] != job.id:
                by_source[row.source] = (job.id, [])
            by_source[row.source][1].append(row)
    rows = [row for _, found in by_source.values() for row in found]
    used = _ordered([job_id for job_id, _ in by_source.values()])
    if not rows:
        return None
    eps = pick_eps(rows, wanted)
    return RobustnessView(jobs=used, eps=eps, heatmaps=heatmaps(rows, eps), curves=curves(rows))
