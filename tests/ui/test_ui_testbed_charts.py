"""The job graph's layered layout and the heatmap, on their own."""

from __future__ import annotations

import re

from sealroom.ui.charts.graph import MAX_ROWS, NODE_H, Node, job_graph, layout
from sealroom.ui.charts.heatmap import heatmap
from tests.train.components.fresh_python import run_fresh


def chain(n: int) -> list[Node]:
    return [
        Node(f"job-{i}", f"step {i}", "succeeded", None, (f"job-{i - 1}",) if i > 1 else ())
        for i in range(1, n + 1)
    ]


def test_a_job_sits_one_layer_right_of_its_deepest_dependency() -> None:
    nodes = [
        Node("job-1", "a", "succeeded", None),
        Node("job-2", "b", "succeeded", None, ("job-1",)),
        Node("job-3", "c", "queued", None, ("job-1", "job-2")),
        Node("job-4", "d", "waiting", None),
    ]
    shape = layout(nodes)
    assert shape.columns == [["job-1", "job-4"], ["job-2"], ["job-3"]]
    assert not shape.cycle


def test_a_cycle_goes_to_a_last_column_instead_of_looping() -> None:
    nodes = [
        Node("job-1", "a", "succeeded", None),
        Node("job-2", "b", "waiting", None, ("job-3", "job-1")),
        Node("job-3", "c", "waiting", None, ("job-2",)),
    ]
    shape = layout(nodes)
    assert shape.cycle == {"job-2", "job-3"}
    assert shape.columns[-1] == ["job-2", "job-3"]
    svg = job_graph(nodes, title="t")
    assert svg.count("in a dependency cycle") == 2


def test_fifty_jobs_in_one_layer_wrap_into_sub_columns() -> None:
    nodes = [Node(f"job-{i}", "x", "queued", f"/testbed/jobs/job-{i}") for i in range(1, 51)]
    svg = str(job_graph(nodes, title="wide"))
    height = int(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    assert height < (MAX_ROWS + 3) * (NODE_H + 12) + 60
    assert svg.count('class="node"') == 50


def test_a_long_chain_stays_one_row_and_every_edge_is_drawn() -> None:
    svg = str(job_graph(chain(30), title="chain"))
    assert svg.count('class="edge"') == 29
    assert svg.count('class="node"') == 30


def test_labels_and_ids_are_escaped() -> None:
    nodes = [Node("<b>", "<script>x</script>", '"><img>', "/x?a=1&b=<2>", ("<i>",))]
    svg = str(job_graph(nodes, title="<t>"))
    assert "<script>" not in svg and "<img>" not in svg and "<b>" not in svg
    assert 'data-job="&lt;i&gt;" data-status="missing"' in svg


def test_heatmap_cells_carry_their_values_and_empty_cells_a_dash() -> None:
    svg = str(
        heatmap(
            ["a", "<b>"],
            ["a", "<b>"],
            [[0.91, None], [0.2, 1.0]],
            title="m",
            row_label="crafted on",
            column_label="tried on",
        )
    )
    assert ">0.91</text>" in svg and ">–</text>" in svg
    assert 'data-row="&lt;b&gt;" data-column="a" data-value="0.2"' in svg
    assert "<b>" not in svg


def test_the_testbed_views_import_first_and_without_torch() -> None:
    """The app imports the pages, which import the views: importing a view on its own must
    not close that loop, and the page must not pay for torch or Ray."""
    run_fresh(
        "import sys\n"
        "import sealroom.ui.views.testbed_actions, sealroom.ui.views.testbed_job\n"
        "import sealroom.ui.app\n"
        "heavy = {'torch', 'ray', 'mlflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
