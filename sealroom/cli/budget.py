"""`sealroom budget show`: privacy budgets per dataset — spent, reserved, remaining, runs."""

from __future__ import annotations

import dataclasses

import typer
from rich.table import Table

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals
from sealroom.workspace import Workspace

app = typer.Typer(help="Privacy budgets of the datasets in this workspace.", no_args_is_help=True)


@app.command()
def show(
    dataset: str = typer.Argument(None, help="Only this dataset id (default: all)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Show each dataset's ε budget: total, spent, reserved by running runs, remaining.

    Example: sealroom budget show mnist --json
    """
    from sealroom.privacy.budget import BudgetBook

    with refusals(), BudgetBook(Workspace.find()) as book:
        budgets = book.summary(dataset)
    if json_out:
        emit_json(
            [{**dataclasses.asdict(b), "runs": [r._asdict() for r in b.runs]} for b in budgets]
        )
        return
    if not budgets:
        where = f" for dataset {dataset}" if dataset else ""
        console.print(f"no privacy budget has been used yet{where}")
        return
    for b in budgets:
        console.print(
            f"[bold]{b.dataset_id}[/] (contract {b.contract_id}): ε total {b.total_epsilon:g}, "
            f"spent {b.spent:.4g}, reserved {b.reserved:.4g}, [bold]remaining "
            f"{b.remaining:.4g}[/] (per run at most {b.per_run_epsilon:g}; δ spent "
            f"{b.spent_delta:g} of {b.total_delta:g})",
            highlight=False,
        )
        if b.runs:
            table = Table("run", "ε", "state")
            for run in b.runs:
                table.add_row(run.run_id, f"{run.epsilon:.4g}", run.state)
            console.print(table)
