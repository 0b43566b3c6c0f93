"""Entry point of the `sealroom` command: global options and the command groups.

Every command lives in its own module, imported only when that command runs (see
:mod:`sealroom.cli.lazy`): ``COMMANDS`` is the static table ``sealroom --help`` lists.
To add a command group, write ``sealroom/cli/<name>.py`` with a ``typer.Typer`` named
``app`` and add one line here, ``"<name>": Lazy("sealroom.cli.<name>", "<its help>"),``;
a single command is ``Lazy(module, help, command="<function name>")``. The help must be
the first paragraph of the group's or command's own help (a test compares them), and the
module may import only typer, the standard library and sealroom.cli.console/options at
its top: everything else inside the command functions, so that ``--help`` and light
commands start in well under half a second (tests/cli/test_cli_startup.py).
"""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals, set_debug
from sealroom.cli.lazy import Lazy, LazyGroup

COMMANDS: dict[str, Lazy] = {
    "train": Lazy(
        "sealroom.cli.train",
        "Train and evaluate a pipeline on cleartext data, writing outputs to --out.",
        command="train_command",
    ),
    "seal": Lazy(
        "sealroom.cli.seal",
        "Seal a file or folder: AES-256-GCM chunks (STREAM) and a manifest signed by the owner.",
        command="seal_command",
    ),
    "unseal": Lazy(
        "sealroom.cli.seal",
        "Verify a package (owner's signature, every chunk) and write its files to a new folder.",
        command="unseal_command",
    ),
    "run": Lazy(
        "sealroom.cli.run",
        "Run a pipeline in a clean room under a signed contract; outputs go sealed to the "
        "consumer.",
        command="run_command",
    ),
    "serve": Lazy(
        "sealroom.cli.serve",
        "Serve a contract's provisioned model from an attested room until Ctrl-C.",
        command="serve_command",
    ),
    "infer": Lazy(
        "sealroom.cli.serve",
        "Classify FILEs through the encrypted channel, after checking the room's attestation.",
        command="infer_command",
    ),
    "demo": Lazy(
        "sealroom.cli.demo",
        "Play a scenario end to end: parties, sealing, contract, keys, the room, decrypted "
        "outputs.",
        command="demo_command",
    ),
    "party": Lazy("sealroom.cli.party", "Parties: providers, consumers and operators."),
    "pipeline": Lazy(
        "sealroom.cli.pipeline", "Compose and inspect pipeline configs (the consumer's side)."
    ),
    "contract": Lazy(
        "sealroom.cli.contract", "Propose, sign and verify contracts between parties."
    ),
    "dataset": Lazy(
        "sealroom.cli.dataset", "Declare a dataset's held-out splits (the provider's side)."
    ),
    "ledger": Lazy("sealroom.cli.ledger", "Inspect and verify the append-only ledger."),
    "attest": Lazy(
        "sealroom.cli.attest",
        "Attestation of clean rooms: measurements, evidence checks, vendor collateral.",
    ),
    "keys": Lazy("sealroom.cli.keys", "Data keys under release policies (key service)."),
    "model": Lazy(
        "sealroom.cli.model", "Served models: provision, rotate, retire (model owner) and show."
    ),
    "kms": Lazy("sealroom.cli.kms", "Run the key service as an HTTP service."),
    "policy": Lazy(
        "sealroom.cli.policy", "Policy as code (Rego): check pipelines against contracts."
    ),
    "output": Lazy("sealroom.cli.output", "Outputs of clean-room runs (consumer side)."),
    "receipt": Lazy("sealroom.cli.receipt", "Run receipts (auditor side)."),
    "budget": Lazy("sealroom.cli.budget", "Privacy budgets of the datasets in this workspace."),
    "task": Lazy("sealroom.cli.task", "Train, predict and score as separate steps."),
    "lab": Lazy("sealroom.cli.lab", "Experiment testbed: experiments, entry points, queues, jobs."),
    "package": Lazy(
        "sealroom.cli.package",
        "Describe sealed packages: signed data cards (file names, schemas, splits).",
    ),
    "ui": Lazy(
        "sealroom.cli.ui",
        "Serve the web dashboard of this workspace until Ctrl-C.",
        command="ui_command",
    ),
}


class SealroomGroup(LazyGroup):
    """The top-level group: ``init`` here, everything else from ``COMMANDS`` when used."""

    lazy = COMMANDS


app = typer.Typer(
    name="sealroom",
    help="Confidential clean rooms for machine learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=SealroomGroup,
)


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
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.create(home)
    if json_out:
        emit_json({"home": str(ws.home)})
    else:
        console.print(f"workspace created at [bold]{ws.home}[/]")


def main() -> None:
    app()
