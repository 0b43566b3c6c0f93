"""`sealroom run`: the operator starts a clean-room run and watches progress, never data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.progress import Progress


from sealroom.cli.console import (
    JSON_OPTION,
    EpochBars,
    console,
    emit_json,
    err_console,
    progress,
    refusals,
)

if TYPE_CHECKING:
    from sealroom.room.events import RoomEvent
    from sealroom.room.receipt import RunReceipt


class RoomView:
    """Turns the room's events into stage lines, log lines and epoch/batch bars.

    The room sends fixed log text only (no metric values); released metrics reach the
    consumer sealed, and this terminal shows the contract's public metrics at the end.
    """

    def __init__(self, bars: Progress, quiet: bool = False) -> None:
        self.bars, self.quiet = bars, quiet
        self.epoch_bars = EpochBars(bars)

    def print(self, text: str) -> None:
        (err_console if self.quiet else console).print(text, highlight=False)

    def __call__(self, event: RoomEvent) -> None:
        if event.type == "stage":
            self.print(f"[bold cyan]▸ {event.message}[/]")
        elif event.type == "log":
            style = "yellow" if event.level == "warning" else "dim"
            self.print(f"  [{style}]{event.message}[/]")
        elif event.type == "epoch":
            self.epoch_bars.epoch(event.epoch, event.epochs, event.batches)
        elif event.type == "batch":
            self.epoch_bars.batch(event.epoch, event.batch, event.batches)


def banner(contract_id: str, pipeline: Path) -> str:
    from sealroom.attest.software import INSECURE_LABEL

    return (
        f"[bold]sealroom run[/] contract [bold]{contract_id}[/], pipeline {pipeline}\n"
        f"[bold yellow]room: {INSECURE_LABEL}[/]"
    )


def summary(receipt: RunReceipt, run_dir: Path) -> list[str]:
    record = receipt.record
    lines = [f"run [bold]{record.run_id}[/] completed; outputs sealed to {record.consumer}"]
    for name, value in sorted(record.metrics.items()):  # the contract's public metrics only
        if isinstance(value, int | float):
            lines.append(f"  {name} (public): {value:.4f}")
    if record.metrics_sha256:
        lines.append(
            f"  metrics sealed to {record.consumer} (sha256 {record.metrics_sha256[:16]}…)"
        )
    lines.append(f"  key custody: {record.key_custody}")
    if record.insecure:
        lines.append("[yellow]  receipt says insecure: true (software attestation)[/]")
    lines.append(f"  outputs and receipt: {run_dir}")
    lines.append(f"  verify: sealroom receipt verify {record.run_id}")
    lines.append(
        f"  decrypt: sealroom output decrypt {record.run_id} --as {record.consumer} --out DIR"
    )
    return lines


def run_command(
    contract: str = typer.Option(..., "--contract", help="Contract id."),
    pipeline: Path = typer.Option(
        ..., "--pipeline", help="Composed pipeline file or parts folder."
    ),
    timeout: float = typer.Option(
        None, "--timeout", min=1, help="Seconds before the room is killed (≤ contract limit)."
    ),
    package_dirs: list[Path] = typer.Option(
        [], "--packages", help="Extra folder holding sealed packages (repeatable)."
    ),
    pipeline_signature: Path = typer.Option(
        None,
        "--pipeline-signature",
        help="The consumer's signature on the pipeline (default: the pipeline path + .sig).",
    ),
    allow_unsandboxed: bool = typer.Option(
        False,
        "--allow-unsandboxed",
        help="Run even where the kernel has no Landlock (the receipt then says sandbox: none).",
    ),
    declarations: list[Path] = typer.Option(
        [],
        "--declaration",
        help="A provider's signed dataset declaration (repeatable; the workspace's "
        "declarations/ folder is always read).",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Run a pipeline in a clean room under a signed contract; outputs go sealed to the consumer.

    Example: sealroom run --contract mnist-demo --pipeline pipeline.json --timeout 600
    """
    from sealroom.room.launcher import run_room
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        err_console.print(banner(contract, pipeline), highlight=False)
        with progress(transient=True) as bars:
            receipt = run_room(
                ws,
                contract,
                pipeline,
                timeout_s=timeout,
                on_event=RoomView(bars, quiet=json_out),
                package_dirs=package_dirs,
                pipeline_signature=pipeline_signature,
                allow_unsandboxed=allow_unsandboxed,
                declarations=declarations,
            )
    run_dir = ws.runs / receipt.run_id
    if json_out:
        emit_json({"run_dir": str(run_dir), **receipt.model_dump(mode="json")})
        return
    for line in summary(receipt, run_dir):
        console.print(line, highlight=False)
