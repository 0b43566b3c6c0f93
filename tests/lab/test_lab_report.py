"""The robustness report: transferability matrix, curves, RobustBench-style table."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.registry import TaskContext
from sealroom.lab.tasks.report import (
    OUTPUTS,
    build_report,
    curves,
    pick_eps,
    robustness_report,
    table,
    transferability,
)
from sealroom.lab.tasks.robustness import Row, results_blob

MODELS = ("a", "b")


def rows() -> list[Row]:
    """Source a is strong white-box (success 0.9 at eps 0.2), transfers weakly (0.3)."""
    out = []
    clean = {"a": 0.9, "b": 0.8}
    for source in MODELS:
        for target in MODELS:
            for method, scale in (("fgm", 0.5), ("pgd", 1.0)):
                for eps in (0.1, 0.2):
                    white = source == target
                    rate = (0.9 if white else 0.3) * scale * eps / 0.2
                    robust = clean[target] * (1 - rate)
                    out.append(
                        Row(source, target, method, eps, 100, int(clean[target] * 100),
                            clean[target], robust, rate)
                    )  # fmt: skip
    return out


def test_lab_report_transferability_matrix_is_source_by_target() -> None:
    matrices = transferability(rows(), 0.2)
    assert set(matrices) == {"fgm", "pgd"}
    pgd = matrices["pgd"]
    assert pgd.shape == (2, 2)
    assert pgd[0, 0] == pytest.approx(0.9) and pgd[1, 1] == pytest.approx(0.9)
    assert pgd[0, 1] == pytest.approx(0.3) and pgd[1, 0] == pytest.approx(0.3)
    assert matrices["fgm"][0, 0] == pytest.approx(0.45)


def test_lab_report_curves_start_at_clean_accuracy_and_take_the_worst_source() -> None:
    points = {(m, meth, e): (w, worst) for m, meth, e, w, worst in curves(rows())}
    assert points[("a", "pgd", 0.0)] == (pytest.approx(0.9), pytest.approx(0.9))
    white, worst = points[("b", "pgd", 0.2)]
    assert white == pytest.approx(0.8 * 0.1) and worst == pytest.approx(0.8 * 0.1)
    white, worst = points[("a", "fgm", 0.1)]
    assert white == pytest.approx(0.9 * (1 - 0.225))


def test_lab_report_table_is_sorted_by_worst_robust_accuracy() -> None:
    board = table(rows(), 0.2)
    assert [e["model"] for e in board] == ["a", "b"]
    assert board[0]["clean_accuracy"] == pytest.approx(0.9)
    assert board[0]["robust_pgd"] == pytest.approx(0.9 * 0.1)
    assert board[0]["robust_worst"] == min(board[0]["robust_fgm"], board[0]["robust_pgd"])
    assert board[0]["sources"] == 2


def test_lab_report_eps_must_be_on_every_grid() -> None:
    assert pick_eps(rows(), None) == 0.2
    assert pick_eps(rows(), 0.1) == 0.1
    with pytest.raises(LabError, match=r"0\.3 is not on every source's grid \(0\.1, 0\.2\)"):
        pick_eps(rows(), 0.3)
    partial = [r for r in rows() if not (r.source == "b" and r.eps == 0.2)]
    assert pick_eps(partial, None) == 0.1


def test_lab_report_artifacts_are_csv_and_png(tmp_path: Path) -> None:
    blobs = build_report(rows(), 0.2)
    assert set(blobs) == set(OUTPUTS)
    for name, blob in blobs.items():
        if blob.kind == "png":
            assert blob.data.startswith(b"\x89PNG\r\n\x1a\n") and len(blob.data) > 5000, name
    matrix = list(csv.DictReader(io.StringIO(blobs["transferability_csv"].data.decode())))
    assert len(matrix) == 2 * 2 * 2
    cell = next(r for r in matrix if (r["method"], r["source"], r["target"]) == ("pgd", "a", "b"))
    assert float(cell["attack_success_rate"]) == pytest.approx(0.3)
    board = list(csv.DictReader(io.StringIO(blobs["table_csv"].data.decode())))
    assert [r["model"] for r in board] == ["a", "b"]
    assert set(board[0]) >= {
        "model",
        "clean_accuracy",
        "eps",
        "robust_fgm",
        "robust_pgd",
        "robust_worst",
    }


def test_lab_report_task_reads_results_files(tmp_path: Path) -> None:
    by_source = {s: [r for r in rows() if r.source == s] for s in MODELS}
    blobs = [results_blob(s, rs) for s, rs in by_source.items()]
    ctx = TaskContext(job_id="job-3", attempt=1, seed=0, workdir=tmp_path)
    out = robustness_report(ctx, results=blobs, eps=0.2)
    assert set(out) == set(OUTPUTS)
    metrics = {m.name: m.value for m in ctx.metrics}
    assert metrics["robust_worst.a"] == pytest.approx(min(0.9 * 0.1, 0.9 * 0.55))
    with pytest.raises(LabError, match="one or more results"):
        robustness_report(ctx, results=[])
    with pytest.raises(LabError, match=r"results\[0\]: not a sealroom\.robustness/1"):
        robustness_report(ctx, results=[ArtifactBlob("results", "json", "r.json", b"{}")])
    with pytest.raises(LabError, match=r"results\[0\]: expected a json artifact, got bytes"):
        robustness_report(ctx, results=[b"{}"])
