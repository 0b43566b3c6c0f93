"""Metrics of chosen jobs side by side, and the same rows as CSV.

The CSV is opened in spreadsheets: a cell that starts with ``=``, ``+``, ``-``, ``@`` (or a
tab or carriage return) would run as a formula, so such a cell gets a leading quote
(OWASP's advice for CSV injection). Numbers are written by Python, never from job text.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sealroom.ui.errors import NotFound
from sealroom.ui.views.testbed import (
    JobRow,
    get_job,
    job_row,
    lab_paths,
    metric_series,
    open_store,
)

MAX_COMPARED = 50
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_HEADER = (
    "job",
    "experiment",
    "entry_point",
    "description",
    "parameters",
    "metric",
    "step",
    "value",
)


class ComparedJob(BaseModel):
    job: JobRow
    parameters: dict[str, Any]


class ComparedMetric(BaseModel):
    """One metric across the jobs: the last value of each (None where a job lacks it) and
    every (step, value) per job for the curves."""

    name: str
    last: list[float | None]
    series: dict[str, list[tuple[int, float]]]

    @property
    def stepped(self) -> bool:
        return any(len(points) > 1 for points in self.series.values())


class Comparison(BaseModel):
    jobs: list[ComparedJob]
    metrics: list[ComparedMetric]


def job_ids(text: str | None) -> list[str]:
    """``a,b,c`` → distinct ids in order; NotFound for a malformed id, 400 for too many."""
    from sealroom.errors import LabError
    from sealroom.ui.views.testbed import check_job_id

    found = list(dict.fromkeys(p.strip() for p in (text or "").split(",") if p.strip()))
    if not found:
        raise LabError("choose jobs to compare: ?jobs=job-1,job-2")
    if len(found) > MAX_COMPARED:
        raise LabError(f"compare at most {MAX_COMPARED} jobs at once, got {len(found)}")
    return [check_job_id(j) for j in found]


def compare(home: Path, ids: list[str]) -> Comparison:
    with open_store(lab_paths(home)) as store:
        if store is None:
            raise NotFound("this workspace has no testbed")
        records = [get_job(store, j) for j in ids]
        series = metric_series(store, ids)
    names = sorted({name for per_job in series.values() for name in per_job})
    metrics = [
        ComparedMetric(
            name=name,
            last=[series[j][name][-1][1] if name in series[j] else None for j in ids],
            series={j: series[j][name] for j in ids if name in series[j]},
        )
        for name in names
    ]
    jobs = [ComparedJob(job=job_row(r), parameters=dict(r.parameters)) for r in records]
    return Comparison(jobs=jobs, metrics=metrics)


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text (see the module docstring)."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def comparison_csv(found: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    by_id = {c.job.id: c for c in found.jobs}
    for metric in found.metrics:
        for job_id, points in metric.series.items():
            compared = by_id[job_id]
            params = json.dumps(compared.parameters, sort_keys=True)
            for step, value in points:
                text_cells = (job_id, compared.job.experiment, compared.job.entry_point)
                writer.writerow(
                    [
                        *(safe_cell(c) for c in text_cells),
                        safe_cell(compared.job.description),
                        safe_cell(params),
                        safe_cell(metric.name),
                        str(step),
                        repr(float(value)),
                    ]
                )
    return out.getvalue()
