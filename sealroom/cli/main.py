"""Entry point of the `sealroom` command: global options and the command groups."""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli import attest as attest_cli
from sealroom.cli import budget as budget_cli
from sealroom.cli import contract as contract_cli
from sealroom.cli import dataset as dataset_cli
from sealroom.cli import keys as keys_cli
from sealroom.cli import kms as kms_cli
from sealroom.cli import lab as lab_cli
from sealroom.cli import ledger as ledger_cli
from sealroom.cli import model as model_cli
from sealroom.cli import output as output_cli
from sealroom.cli import package as package_cli
from sealroom.cli import party as party_cli
from sealroom.cli import pipeline as pipeline_cli
from sealroom.cli import policy as policy_cli
from sealroom.cli import receipt as receipt_cli
from sealroom.cli import task as task_cli
from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals, set_debug
from sealroom.cli.demo import demo_command
from sealroom.cli.run import run_command
from sealroom.cli.seal import seal_command, unseal_command
from sealroom.cli.serve import infer_command, serve_command
from sealroom.cli.train import train_command
from sealroom.workspace import Workspace

app = typer.Typer(
    name="sealroom",
    help="Confidential clean rooms for machine learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(party_cli.app, name="party")
app.add_typer(pipeline_cli.app, name="pipeline")
app.add_typer(contract_cli.app, name="contract")
app.add_typer(dataset_cli.app, name="dataset")
app.add_typer(ledger_cli.app, name="ledger")
app.add_typer(attest_cli.app, name="attest")
app.add_typer(keys_cli.app, name="keys")
app.add_typer(model_cli.app, name="model")
app.add_typer(kms_cli.app, name="kms")
app.add_typer(policy_cli.app, name="policy")
app.add_typer(output_cli.app, name="output")
app.add_typer(receipt_cli.app, name="receipt")
app.add_typer(budget_cli.app, name="budget")
app.add_typer(task_cli.app, name="task")
app.add_typer(lab_cli.app, name="lab")
app.add_typer(package_cli.app, name="package")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"sealroom {version('sealroom')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    _version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
) -> None:
    set_debug(debug)


@app.command()
def init(
    home: Path = typer.Option(
        None, "--home", help="Workspace folder (default $SEALROOM_HOME or ./.sealroom)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Create a workspace.

    Example: sealroom init --home ./hospital
    """
    with refusals():
        ws = Workspace.create(home)
    if json_out:
        emit_json({"home": str(ws.home)})
    else:
        console.print(f"workspace created at [bold]{ws.home}[/]")


app.command("train")(train_command)
app.command("seal")(seal_command)
app.command("unseal")(unseal_command)
app.command("run")(run_command)
app.command("serve")(serve_command)
app.command("infer")(infer_command)
app.command("demo")(demo_command)


def main() -> None:
    app()
