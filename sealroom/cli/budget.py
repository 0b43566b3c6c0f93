"""`sealroom budget show`: privacy budgets per dataset — spent, reserved, remaining, runs.

A dataset whose contract names its own ``key_service`` has its budget there, not here: this
workspace's ledger only mirrors it (``budget.mirrored``); ``--key-service URL`` shows that
key service's book.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals

app = typer.Typer(help="Privacy budgets of the datasets in this workspace.", no_args_is_help=True)


@app.command()
def show(
    dataset: str = typer.Argument(None, help="Only this dataset id (default: all)."),
    key_service: str = typer.Option(
        None,
        "--key-service",
        help="Show the budgets kept by this key service (`kms serve` URL; token from "
        "SEALROOM_KMS_TOKEN or SEALROOM_KMS_TOKEN_FILE) instead of this workspace's.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Show each dataset's ε budget: total, spent, reserved by running runs, remaining.

    Example: sealroom budget show mnist --json
    """
    from rich.table import Table

    with refusals():
        budgets = _remote(key_service, dataset) if key_service else _local(dataset)
    if json_out:
        emit_json(budgets)
        return
    if not budgets:
        where = f" for dataset {dataset}" if dataset else ""
        console.print(f"no privacy budget has been used yet{where}")
        return
    for b in budgets:
        console.print(
            f"[bold]{b['dataset_id']}[/] (contract {b['contract_id']}): ε total "
            f"{b['total_epsilon']:g}, spent {b['spent']:.4g}, reserved {b['reserved']:.4g}, "
            f"[bold]remaining {b['remaining']:.4g}[/] (per run at most "
            f"{b['per_run_epsilon']:g}; δ spent {b['spent_delta']:g} of {b['total_delta']:g})",
            highlight=False,
        )
        if b["runs"]:
            table = Table("run", "ε", "state")
            for run in b["runs"]:
                table.add_row(run["run_id"], f"{run['epsilon']:.4g}", run["state"])
            console.print(table)


def _local(dataset: str | None) -> list[dict[str, Any]]:
    from sealroom.privacy.budget import BudgetBook
    from sealroom.workspace import Workspace

    with BudgetBook(Workspace.find()) as book:
        budgets = book.summary(dataset)
    return [{**dataclasses.asdict(b), "runs": [r._asdict() for r in b.runs]} for b in budgets]


def _remote(url: str, dataset: str | None) -> list[dict[str, Any]]:
    from sealroom.kms.client import KmsClient

    with KmsClient(url) as client:
        return client.budgets(dataset)
