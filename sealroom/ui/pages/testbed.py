"""Testbed pages: experiments, one experiment's job graph (live while jobs run), a job's
logs, metrics and artifacts, metric comparison with CSV, and the actions cancel / rerun.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from markupsafe import Markup

from sealroom.ui.charts.graph import Node, job_graph
from sealroom.ui.charts.heatmap import heatmap
from sealroom.ui.charts.lines import Series, line_chart
from sealroom.ui.render import fragment, page
from sealroom.ui.views import testbed as view
from sealroom.ui.views import testbed_actions as actions
from sealroom.ui.views import testbed_compare as comparing
from sealroom.ui.views import testbed_job as one_job
from sealroom.ui.views.testbed_robustness import RobustnessView

router = APIRouter()
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv", "png": "image/png"}


def _home(request: Request) -> Any:
    return request.app.state.settings.ws.home


def graph_of(found: view.ExperimentView) -> Markup:
    nodes = [
        Node(
            id=j.id,
            label=j.description or j.entry_point,
            status=j.status,
            href=f"/testbed/jobs/{j.id}",
            depends_on=tuple(j.depends_on),
        )
        for j in found.jobs
    ]
    return job_graph(nodes, title=f"jobs of {found.name}")


def robustness_charts(found: RobustnessView) -> dict[str, list[Markup]]:
    maps = [
        heatmap(
            h.sources,
            h.targets,
            h.values,
            title=f"transfer: attack success rate, {h.method.upper()} ε={h.eps:g}",
            row_label="crafted on",
            column_label="tried on",
        )
        for h in found.heatmaps
    ]
    curves = []
    for kind in ("white-box", "worst"):
        for method in dict.fromkeys(c.method for c in found.curves):
            series = [
                Series(c.model, c.points)
                for c in found.curves
                if c.kind == kind and c.method == method
            ]
            if series:
                what = "white-box" if kind == "white-box" else "worst over sources"
                curves.append(
                    line_chart(
                        series,
                        title=f"robust accuracy, {method.upper()} ({what})",
                        x_label="attack ε (L∞)",
                        y_label="accuracy",
                        y_floor=0.0,
                    )
                )
    return {"heatmaps": maps, "curves": curves}


def metric_charts(metrics: list[one_job.MetricSeries]) -> list[Markup]:
    stepped = [m for m in metrics if len(m.points) > 1][: one_job.MAX_METRIC_CHARTS]
    return [
        line_chart(
            [Series(m.name, [(float(s), v) for s, v in m.points])],
            title=m.name,
            x_label="step",
            y_label=m.name,
        )
        for m in stepped
    ]


# ------------------------------------------------------------------------- HTML pages


@router.get("/testbed", response_class=HTMLResponse)
def testbed_page(request: Request) -> HTMLResponse:
    return page(request, "testbed.html", found=view.overview(_home(request)))


@router.get("/testbed/compare", response_class=HTMLResponse)
def compare_page(request: Request, jobs: list[str] = Query(default=[])) -> HTMLResponse:
    ids = comparing.job_ids(",".join(jobs))
    found = comparing.compare(_home(request), ids)
    charts: list[Markup] = []
    for metric in found.metrics:
        if metric.stepped and len(charts) < one_job.MAX_METRIC_CHARTS:
            series = [Series(j, [(float(s), v) for s, v in p]) for j, p in metric.series.items()]
            charts.append(
                line_chart(series, title=metric.name, x_label="step", y_label=metric.name)
            )
    return page(request, "testbed_compare.html", found=found, charts=charts, ids=",".join(ids))


@router.get("/testbed/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, attempt: int | None = None) -> HTMLResponse:
    found = one_job.job(_home(request), job_id, attempt)
    return page(request, "testbed_job.html", found=found, charts=metric_charts(found.metrics))


@router.get("/testbed/jobs/{job_id}/live", response_class=HTMLResponse)
def job_live(request: Request, job_id: str) -> HTMLResponse:
    """Status and attempts alone: a job's page polls this every 2 s while it has not ended."""
    found = one_job.job(_home(request), job_id)
    return HTMLResponse(fragment("testbed_job_live.html", found=found))


@router.get("/testbed/jobs/{job_id}/artifacts/{name}", response_model=None)
def artifact_download(request: Request, job_id: str, name: str) -> FileResponse:
    path, filename, kind = one_job.artifact_path(_home(request), job_id, name)
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(kind, "application/octet-stream"),
        filename=filename,
        content_disposition_type="attachment",
    )


@router.get("/testbed/experiments/{experiment}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment: str) -> HTMLResponse:
    found = view.experiment(_home(request), experiment)
    charts = robustness_charts(found.robustness) if found.robustness else None
    return page(
        request, "testbed_experiment.html", found=found, graph=graph_of(found), robustness=charts
    )


@router.get("/testbed/experiments/{experiment}/live", response_class=HTMLResponse)
def experiment_live(request: Request, experiment: str) -> HTMLResponse:
    """The graph and status counts alone: the experiment page polls this every 2 s."""
    found = view.experiment(_home(request), experiment, with_robustness=False)
    return HTMLResponse(fragment("testbed_live.html", found=found, graph=graph_of(found)))


# ------------------------------------------------------------------------- JSON and CSV


@router.get("/api/testbed")
def testbed_json(request: Request) -> dict[str, Any]:
    return view.overview(_home(request)).model_dump(mode="json")


@router.get("/api/testbed/compare")
def compare_json(request: Request, jobs: list[str] = Query(default=[])) -> dict[str, Any]:
    return comparing.compare(_home(request), comparing.job_ids(",".join(jobs))).model_dump(
        mode="json"
    )


@router.get("/api/testbed/metrics.csv")
def metrics_csv(request: Request, jobs: list[str] = Query(default=[])) -> Response:
    ids = comparing.job_ids(",".join(jobs))
    body = comparing.comparison_csv(comparing.compare(_home(request), ids))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="testbed-metrics.csv"'},
    )


@router.get("/api/testbed/jobs/{job_id}")
def job_json(request: Request, job_id: str, attempt: int | None = None) -> dict[str, Any]:
    return one_job.job(_home(request), job_id, attempt).model_dump(mode="json")


@router.post("/api/testbed/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    return actions.act(_home(request), job_id, "cancel").model_dump(mode="json")


@router.post("/api/testbed/jobs/{job_id}/rerun")
def rerun_job(request: Request, job_id: str) -> dict[str, Any]:
    return actions.act(_home(request), job_id, "rerun").model_dump(mode="json")


@router.get("/api/testbed/experiments/{experiment}")
def experiment_json(request: Request, experiment: str) -> dict[str, Any]:
    return view.experiment(_home(request), experiment).model_dump(mode="json")
