"""The robustness report: transferability matrices, robust-accuracy curves, a leaderboard.

Reads the ``evaluate_attack`` results of every source model and writes, as CSV and PNG:

- ``transferability``: per method, a source × target matrix of attack success rate at one
  ε (the diagonal is white-box; off-diagonal cells are transfer attacks, as in Papernot
  et al., 2016, "Transferability in Machine Learning", arXiv:1605.07277);
- ``curves``: per model and method, robust accuracy against ε (ε = 0 is clean accuracy)
  under white-box attack, and the worst case over every source;
- ``table``: a RobustBench-style table: model, clean accuracy, robust accuracy at ε under
  each method (white-box) and the worst over methods and sources, best model first.

Figures are drawn with matplotlib's Agg canvas directly (no pyplot, no display).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.attacks import eps_label
from sealroom.lab.tasks.registry import TaskContext, task
from sealroom.lab.tasks.robustness import Row, read_results
from sealroom.lab.tasks.values import input_bytes

OUTPUTS = (
    "transferability_csv",
    "transferability_png",
    "curves_csv",
    "curves_png",
    "table_csv",
    "table_png",
)


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            ["" if v is None else (f"{v:.4f}" if isinstance(v, float) else v) for v in row]
        )
    return out.getvalue().encode()


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=120, metadata={"Software": None})
    return out.getvalue()


def _models(rows: list[Row]) -> tuple[list[str], list[str], list[str], list[float]]:
    def ordered(values: Any) -> list[Any]:
        return list(dict.fromkeys(values))

    return (
        ordered(r.source for r in rows),
        ordered(r.target for r in rows),
        ordered(r.method for r in rows),
        sorted({r.eps for r in rows}),
    )


def pick_eps(rows: list[Row], eps: float | None) -> float:
    """The ε the matrix and table use: the one asked for (it must be on every grid), else
    the largest ε every source attacked with."""
    grids: dict[str, set[float]] = {}
    for row in rows:
        grids.setdefault(row.source, set()).add(row.eps)
    common = set.intersection(*grids.values())
    if eps is None:
        if not common:
            raise LabError("robustness_report: the sources share no eps; name one with eps")
        return max(common)
    if float(eps) not in common:
        shared = ", ".join(eps_label(e) for e in sorted(common)) or "none"
        raise LabError(f"robustness_report.eps: {eps} is not on every source's grid ({shared})")
    return float(eps)


def transferability(rows: list[Row], eps: float) -> dict[str, np.ndarray]:
    """method -> matrix[source, target] of attack success rate (nan where undefined)."""
    sources, targets, methods, _ = _models(rows)
    out = {m: np.full((len(sources), len(targets)), np.nan) for m in methods}
    for r in rows:
        if r.eps == eps and r.attack_success_rate is not None:
            out[r.method][sources.index(r.source), targets.index(r.target)] = r.attack_success_rate
    return out


def curves(rows: list[Row]) -> list[tuple[str, str, float, float | None, float | None]]:
    """(model, method, ε, white-box robust accuracy, worst over sources); ε 0 = clean."""
    _, targets, methods, grid = _models(rows)
    out: list[tuple[str, str, float, float | None, float | None]] = []
    for target in targets:
        mine = [r for r in rows if r.target == target]
        clean = float(np.mean([r.clean_accuracy for r in mine]))
        for method in methods:
            out.append((target, method, 0.0, clean, clean))
            for eps in grid:
                cell = [r for r in mine if r.method == method and r.eps == eps]
                white = [r.robust_accuracy for r in cell if r.source == target]
                out.append(
                    (
                        target,
                        method,
                        eps,
                        white[0] if white else None,
                        min(r.robust_accuracy for r in cell) if cell else None,
                    )
                )
    return out


def table(rows: list[Row], eps: float) -> list[dict[str, Any]]:
    """RobustBench-style rows, the most robust model first."""
    _, targets, methods, _ = _models(rows)
    out = []
    for target in targets:
        mine = [r for r in rows if r.target == target and r.eps == eps]
        entry: dict[str, Any] = {
            "model": target,
            "clean_accuracy": float(np.mean([r.clean_accuracy for r in mine])),
            "eps": eps,
        }
        for method in methods:
            white = [r.robust_accuracy for r in mine if r.method == method and r.source == target]
            entry[f"robust_{method}"] = white[0] if white else None
        entry["robust_worst"] = min(r.robust_accuracy for r in mine)
        entry["sources"] = len({r.source for r in mine})
        out.append(entry)
    return sorted(out, key=lambda e: (-e["robust_worst"], e["model"]))


def _matrix_figure(
    matrices: dict[str, np.ndarray], sources: list[str], targets: list[str], eps: float
) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(matrices) + 1.0, 4.4), layout="constrained")
    axes = figure.subplots(1, len(matrices), squeeze=False)[0]
    for ax, (method, matrix) in zip(axes, matrices.items(), strict=True):
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(targets)), targets, rotation=30)
        ax.set_yticks(range(len(sources)), sources)
        ax.set_xlabel("target model")
        ax.set_ylabel("source model (crafted on)")
        ax.set_title(f"{method.upper()} success rate, ε={eps_label(eps)}")
        for (i, j), value in np.ndenumerate(matrix):
            text = "n/a" if np.isnan(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", color="white" if value < 0.6 else "black")
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="attack success rate")
    return figure


def _curves_figure(points: list[tuple[str, str, float, float | None, float | None]]) -> Any:
    from matplotlib.figure import Figure

    methods = list(dict.fromkeys(p[1] for p in points))
    models = list(dict.fromkeys(p[0] for p in points))
    figure = Figure(figsize=(4.6 * len(methods), 3.8), layout="constrained")
    axes = figure.subplots(1, len(methods), squeeze=False)[0]
    for ax, method in zip(axes, methods, strict=True):
        for k, model in enumerate(models):
            mine = [p for p in points if p[0] == model and p[1] == method]
            color = f"C{k % 10}"
            white = [(p[2], p[3]) for p in mine if p[3] is not None]
            worst = [(p[2], p[4]) for p in mine if p[4] is not None]
            ax.plot(
                *zip(*white, strict=True), marker="o", color=color, label=f"{model} (white-box)"
            )
            ax.plot(
                *zip(*worst, strict=True),
                ls="--",
                color=color,
                alpha=0.6,
                label=f"{model} (worst source)",
            )
        ax.set_xlabel("ε (L∞, inputs in [0, 1])")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"robust accuracy vs ε, {method.upper()}")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="upper right")
    return figure


def _table_figure(header: list[str], rows: list[list[str]]) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

    figure = Figure(figsize=(1.4 * len(header), 0.3 * (len(rows) + 1) + 0.2))
    ax = figure.add_axes((0.01, 0.01, 0.98, 0.98))
    ax.axis("off")
    ax.table(
        cellText=rows, colLabels=header, cellLoc="center", bbox=Bbox.from_bounds(0.0, 0.0, 1.0, 1.0)
    )
    return figure


def build_report(rows: list[Row], eps: float | None = None) -> dict[str, ArtifactBlob]:
    """Every report artifact from the rows of all sources."""
    if not rows:
        raise LabError("robustness_report: no results rows")
    chosen = pick_eps(rows, eps)
    sources, targets, _, _ = _models(rows)
    matrices = transferability(rows, chosen)
    matrix_rows = [
        [method, source, target, chosen, None if np.isnan(m[i, j]) else float(m[i, j])]
        for method, m in matrices.items()
        for i, source in enumerate(sources)
        for j, target in enumerate(targets)
    ]
    points = curves(rows)
    board = table(rows, chosen)
    header = list(board[0])
    shown = [
        [
            eps_label(v)
            if k == "eps"
            else ("" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
            for k, v in e.items()
        ]
        for e in board
    ]
    blobs = {
        "transferability_csv": (
            "csv",
            "transferability.csv",
            _csv(["method", "source", "target", "eps", "attack_success_rate"], matrix_rows),
        ),
        "transferability_png": (
            "png",
            "transferability.png",
            _png(_matrix_figure(matrices, sources, targets, chosen)),
        ),
        "curves_csv": (
            "csv",
            "robust_accuracy_curves.csv",
            _csv(
                ["model", "method", "eps", "whitebox_robust_accuracy", "worst_robust_accuracy"],
                [list(p) for p in points],
            ),
        ),
        "curves_png": ("png", "robust_accuracy_curves.png", _png(_curves_figure(points))),
        "table_csv": (
            "csv",
            "robustness_table.csv",
            _csv(header, [list(e.values()) for e in board]),
        ),
        "table_png": ("png", "robustness_table.png", _png(_table_figure(header, shown))),
    }
    return {
        name: ArtifactBlob(name, kind, filename, data)
        for name, (kind, filename, data) in blobs.items()
    }


@task(
    "robustness_report",
    outputs=OUTPUTS,
    description="transferability matrix, robust accuracy vs eps curves and a RobustBench-"
    "style table (CSV + PNG) from evaluate_attack results",
    args={
        "results": "list of evaluate_attack results artifacts (one per source model)",
        "eps": "the eps of the matrix and the table (default: largest shared eps)",
    },
)
def robustness_report(
    ctx: TaskContext, results: list[Any], eps: float | None = None
) -> dict[str, Any]:
    if not isinstance(results, list) or not results:
        raise LabError("robustness_report.results: a list of one or more results artifacts")
    rows: list[Row] = []
    for i, value in enumerate(results):
        rows.extend(
            read_results(
                input_bytes(value, "json", f"robustness_report.results[{i}]"),
                f"robustness_report.results[{i}]",
            )
        )
    blobs = build_report(rows, eps)
    for entry in table(rows, pick_eps(rows, eps)):
        ctx.metric(f"robust_worst.{entry['model']}", entry["robust_worst"])
        ctx.metric(f"clean_accuracy.{entry['model']}", entry["clean_accuracy"])
    ctx.log(f"report over {len(rows)} rows from {len(results)} results files")
    return dict(blobs)
