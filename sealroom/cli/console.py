"""Shared terminal output: rich consoles, JSON emission and the error-to-exit-code rule."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from sealroom.errors import SealroomError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

console = Console()
err_console = Console(stderr=True)

# The --json flag every command shares: machine-readable output on stdout.
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output.")


def _use_passphrase_file(value: Path | None) -> Path | None:
    from sealroom.crypto.passphrase import use_passphrase_file

    with refusals():
        use_passphrase_file(value)
    return value


# Every command that opens a party's private keys: where the passphrase comes from.
PASSPHRASE_FILE_OPTION = typer.Option(
    None,
    "--passphrase-file",
    help="File whose first line is the party's passphrase (else $SEALROOM_PASSPHRASE, "
    "else a prompt in a terminal).",
    callback=_use_passphrase_file,
)

F = TypeVar("F", bound=Callable[..., Any])

_state = {"debug": False}


def set_debug(debug: bool) -> None:
    _state["debug"] = debug


def emit_json(data: Any) -> None:
    """Print machine-readable output on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a SealroomError into one red line and exit code 1 (traceback only with --debug)."""
    try:
        yield
    except SealroomError as exc:
        if _state["debug"]:
            raise
        raise fail(str(exc)) from None


def progress(transient: bool = False) -> Progress:
    """A progress bar on stderr so that --json output on stdout stays clean."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


class EpochBars:
    """An epochs bar and a batches bar, created at the first epoch a run reports.

    Shared by ``sealroom run`` (room events) and ``train --local`` (trainer events).
    """

    def __init__(self, bars: Progress) -> None:
        self.bars = bars
        self.epochs: TaskID | None = None
        self.batches: TaskID | None = None

    def epoch(self, epoch: int, epochs: int, batches: int) -> None:
        """Epoch ``epoch`` of ``epochs`` starts, with ``batches`` batches."""
        if self.epochs is None:
            self.epochs = self.bars.add_task("epochs", total=epochs)
            self.batches = self.bars.add_task("batches", total=batches)
        assert self.batches is not None
        self.bars.update(self.epochs, completed=epoch - 1)
        self.bars.reset(self.batches, total=batches)
        self.bars.update(self.batches, description=f"epoch {epoch}/{epochs}")

    def batch(self, epoch: int, batch: int, batches: int) -> None:
        """Batch ``batch`` of ``batches`` is done; the last one completes the epoch."""
        if self.batches is None or self.epochs is None:
            return
        self.bars.update(self.batches, completed=batch)
        if batch == batches:
            self.bars.update(self.epochs, completed=epoch)
