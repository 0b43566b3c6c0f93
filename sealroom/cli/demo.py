"""`sealroom demo NAME`: the whole story of a scenario in a fresh workspace, step by step."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sealroom.cli.console import (
    JSON_OPTION,
    console,
    emit_json,
    err_console,
    heading,
    progress,
    refusals,
)
from sealroom.cli.run import RoomView

if TYPE_CHECKING:
    from sealroom.room.events import RoomEvent


class RichNarrator:
    """Titled rules per step, dim notes, byte bars for sealing, the room's bars and log."""

    def __init__(self, quiet: bool = False) -> None:
        self.out = err_console if quiet else console

    def step(self, title: str) -> None:
        heading(self.out, f"[bold]{title}[/]")

    def note(self, text: str) -> None:
        self.out.print(f"  [dim]{text}[/]", highlight=False)

    @contextmanager
    def bytes(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        bars = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        with bars:
            task = bars.add_task(label, total=total or None)
            yield lambda n: bars.advance(task, n)

    @contextmanager
    def room(self) -> Iterator[Callable[[RoomEvent], None]]:
        with progress(transient=True) as bars:
            yield RoomView(bars, quiet=self.out is err_console)


def demo_command(
    name: str = typer.Argument(
        "mnist",
        help="Scenario: mnist, dp-mnist, dp-fashion, mri, inference (see scenarios/), or "
        "testbed (the lab's reference robustness experiment, reduced).",
    ),
    home: Path = typer.Option(
        None,
        "--home",
        help="Empty folder for the demo, kept afterwards (default: a temp folder, removed "
        "at the end unless --keep).",
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the temp folder (workspace, receipt, decrypted outputs)."
    ),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override the pipeline's epochs."),
    json_out: bool = JSON_OPTION,
    inline: bool = typer.Option(
        False, "--inline", help="testbed: run the plan in this process (no Ray, no lab server)."
    ),
    scale: str = typer.Option(
        "reduced", "--scale", help="testbed: reduced (~1 min on 2 cores), full (~4 min) or tiny."
    ),
) -> None:
    """Play a scenario end to end: parties, sealing, contract, keys, the room, decrypted outputs.

    Without --home the demo runs in a temp folder that is removed at the end (the metrics
    are printed first); --keep keeps it, with the receipt to verify and the decrypted outputs.

    Example: sealroom demo mnist --home ./demo --epochs 2
    """
    temporary = home is None
    if home is None:
        home = Path(tempfile.mkdtemp(prefix=f"sealroom-demo-{name}-"))
    kept = keep or not temporary
    try:
        _play(name, home, kept, epochs, json_out, inline, scale)
    finally:
        if not kept:
            shutil.rmtree(home, ignore_errors=True)
            err_console.print(
                f"  demo folder {home} removed (--keep or --home DIR keeps the workspace, "
                "the receipt and the decrypted outputs)",
                highlight=False,
            )


def _play(
    name: str, home: Path, kept: bool, epochs: int | None, json_out: bool, inline: bool, scale: str
) -> None:
    """One scenario in ``home``; paths are printed only when the folder is ``kept``."""
    from sealroom.errors import WorkspaceError
    from sealroom.room.story import Story, iter_metrics, load_scenario

    if name == "testbed":  # the experiment testbed: a lab server, a plan of 13 jobs
        from sealroom.cli.demo_testbed import testbed_demo

        testbed_demo(home, json_out, inline, scale)
        return
    if name == "inference":  # trains, then serves: its own story and summary
        from sealroom.cli.demo_inference import inference_demo

        inference_demo(home, epochs, json_out, RichNarrator(quiet=json_out))
        return
    with refusals():
        scenario = load_scenario(name)
        if home.exists() and any(home.iterdir()):
            raise WorkspaceError(f"{home} is not empty; the demo needs a fresh folder")
        home = home.resolve()
        narrator = RichNarrator(quiet=json_out)
        narrator.out.print(f"[bold]{scenario.title}[/]  (demo folder {home})", highlight=False)
        started = time.monotonic()
        result = Story(scenario, home, narrator, epochs=epochs).play()
    seconds = time.monotonic() - started
    record = result.receipt.record
    if json_out:
        where = {
            "home": str(result.home),
            "run_dir": str(result.run_dir),
            "outputs": str(result.outputs),
        }
        emit_json(
            {
                **(where if kept else dict.fromkeys(where)),
                "kept": kept,
                "run_id": record.run_id,
                "metrics": dict(iter_metrics(result.outputs)),
                "insecure": record.insecure,
                "seconds": round(seconds, 1),
            }
        )
        return
    heading(console, "[bold green]Done[/]")
    for metric, value in iter_metrics(result.outputs):  # the consumer's decrypted view
        console.print(f"  {metric:<10} {value:.4f}", highlight=False)
    spent = (record.privacy or {}).get("epsilon_spent")
    if isinstance(spent, int | float):
        delta = (record.privacy or {}).get("delta")
        console.print(f"  privacy    ε {spent:.3f} spent (δ {delta})", highlight=False)
    if record.insecure:
        console.print("  [yellow]room attested by INSECURE software attestation (no TEE)[/]")
    if kept:
        console.print(f"  decrypted outputs: [bold]{result.outputs}[/]", highlight=False)
        console.print(f"  sealed outputs and receipt: {result.run_dir}", highlight=False)
        console.print(
            f"  verify: SEALROOM_HOME={result.home} sealroom receipt verify {record.run_id}",
            highlight=False,
        )
        from sealroom.room.story import DEMO_PASSPHRASE

        console.print(
            f"  the demo parties' keys are encrypted under the published demo passphrase: "
            f"SEALROOM_PASSPHRASE='{DEMO_PASSPHRASE.decode()}'",
            highlight=False,
        )
    console.print(f"  ({seconds:.0f} s)", highlight=False)
