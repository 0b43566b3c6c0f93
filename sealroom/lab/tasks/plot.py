"""The plot task: a PNG line or bar chart from a CSV table or an evaluation report.

matplotlib runs headless (Agg). Column names come from the job's arguments and are
looked up in the table's header, never used as anything but labels.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.registry import InputFile, TaskContext, task
from sealroom.lab.tasks.values import input_bytes

MAX_ROWS = 100_000
KINDS = ("line", "bar")


def read_table(value: Any, where: str) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV artifact, or an evaluation report (json) as columns epsilon, accuracy."""
    kind = value.kind if isinstance(value, InputFile | ArtifactBlob) else ""
    if kind == "json":
        try:
            report = json.loads(input_bytes(value, "json", where))
        except (ValueError, UnicodeDecodeError):
            raise LabError(f"{where}: not valid JSON") from None
        curve = report.get("robust") if isinstance(report, dict) else None
        if not isinstance(curve, list):
            raise LabError(f"{where}: a json table must be an evaluation report with 'robust'")
        rows = [{k: str(v) for k, v in point.items()} for point in curve if isinstance(point, dict)]
        return ["epsilon", "accuracy"], rows
    try:
        text = input_bytes(value, "csv", where).decode("utf-8")
    except UnicodeDecodeError:
        raise LabError(f"{where}: the CSV is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        rows.append(row)
        if len(rows) > MAX_ROWS:
            raise LabError(f"{where}: over {MAX_ROWS} rows")
    return list(reader.fieldnames or []), rows


def _number(text: str | None, where: str) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        raise LabError(f"{where}: {str(text)[:30]!r} is not a number") from None


def render(
    header: list[str], rows: list[dict[str, str]], x: str, ys: list[str], title: str, kind: str
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for column in [x, *ys]:
        if column not in header:
            raise LabError(f"table has no column {column[:40]!r} (columns: {', '.join(header)})")
    labels = [row[x] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        width = 0.8 / max(len(ys), 1)
        for i, column in enumerate(ys):
            values = [_number(row[column], f"column {column}") for row in rows]
            if kind == "bar":
                ax.bar([p + i * width for p in range(len(rows))], values, width, label=column)
            else:
                xs = [_number(v, f"column {x}") for v in labels]
                ax.plot(xs, values, marker="o", label=column)
        if kind == "bar":
            ax.set_xticks([p + width * (len(ys) - 1) / 2 for p in range(len(rows))], labels)
        ax.set_xlabel(x)
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


@task(
    "plot",
    outputs=("png",),
    description="A PNG chart of columns of a CSV artifact (or an evaluation report)",
    args={
        "table": "csv artifact, or the json report of evaluate (columns epsilon, accuracy)",
        "x": "column for the x axis (line) or the bar labels (bar)",
        "y": "column or list of columns to draw",
        "title": "chart title",
        "kind": "line | bar (default line)",
    },
)
def plot(
    ctx: TaskContext,
    table: Any,
    x: str = "epsilon",
    y: str | list[str] = "accuracy",
    title: str = "",
    kind: str = "line",
) -> dict[str, Any]:
    if kind not in KINDS:
        raise LabError(f"kind {str(kind)[:20]!r}: use line or bar")
    ys = [y] if isinstance(y, str) else [str(c) for c in y]
    header, rows = read_table(table, "table")
    if not rows:
        raise LabError("table: no rows to plot")
    png = render(header, rows, str(x), ys, str(title), kind)
    ctx.log(f"plot: {kind} chart of {', '.join(ys)} against {x}, {len(rows)} rows")
    return {"png": ArtifactBlob(name="png", kind="png", filename="plot.png", data=png)}
