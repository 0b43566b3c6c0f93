"""plot: PNG charts from a CSV table or an evaluation report; bad columns named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.plot import plot
from sealroom.lab.tasks.registry import InputFile, TaskContext

PNG = b"\x89PNG\r\n\x1a\n"
CSV = b"model,clean,robust\nmlp,0.8,0.2\nlenet,0.85,0.3\n"


def ctx(tmp_path: Path) -> TaskContext:
    return TaskContext("job-1", 1, 0, tmp_path)


def test_a_bar_chart_from_a_csv_input_file(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_bytes(CSV)
    table = InputFile("table", "csv", path)
    out = plot(ctx(tmp_path), table, x="model", y=["clean", "robust"], kind="bar", title="t")
    blob = out["png"]
    assert blob.kind == "png" and blob.data.startswith(PNG) and len(blob.data) > 1000


def test_a_robustness_curve_from_an_evaluation_report(tmp_path: Path) -> None:
    report = {
        "accuracy": 0.9,
        "robust": [{"epsilon": 0.0, "accuracy": 0.9}, {"epsilon": 0.1, "accuracy": 0.4}],
    }
    blob = ArtifactBlob("report", "json", "r.json", json.dumps(report).encode())
    assert plot(ctx(tmp_path), blob)["png"].data.startswith(PNG)


def test_bad_tables_are_refused_in_one_line(tmp_path: Path) -> None:
    table = ArtifactBlob("t", "csv", "t.csv", CSV)
    with pytest.raises(
        LabError, match=r"table has no column 'nope' \(columns: model, clean, robust\)"
    ):
        plot(ctx(tmp_path), table, x="model", y="nope")
    with pytest.raises(LabError, match=r"column clean: 'high' is not a number"):
        bad = ArtifactBlob("t", "csv", "t.csv", b"model,clean\nmlp,high\n")
        plot(ctx(tmp_path), bad, x="model", y="clean", kind="bar")
    with pytest.raises(LabError, match=r"table: expected a csv artifact, got str"):
        plot(ctx(tmp_path), "/etc/passwd")
    with pytest.raises(LabError, match=r"kind 'pie': use line or bar"):
        plot(ctx(tmp_path), table, kind="pie")
