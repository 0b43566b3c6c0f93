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
from rich.markup import escape

from sealroom.errors import ConfigProblems, SealroomError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

# Width of output that goes to a pipe or a file: wide enough that tables never fold a
# path or a digest, whatever $COLUMNS says (a pipe has no columns).
PIPE_WIDTH = 240


def make_console(stderr: bool = False) -> Console:
    """A console whose printed lines are never broken by rich (soft_wrap: a terminal wraps
    them visually, a pipe gets them whole); tables use PIPE_WIDTH when not on a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        terminal = False
    return Console(stderr=stderr, soft_wrap=True, width=None if terminal else PIPE_WIDTH)


console = make_console()
err_console = make_console(stderr=True)


def _hide_flag_types() -> None:
    """typer's rich help prints a flag's type (``--json <bool>``) as if it took a value;
    a flag takes none, so its type column stays empty (every bool flag, ``--help`` too).
    A repeatable option reads ``<str> (repeatable)`` rather than Python's ``<list[str]>``."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_sealroom_flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        text = shown(self, ctx)
        if text and text.startswith("<list[") and text.endswith("]>"):
            return f"<{text[6:-2].lower()}> (repeatable)"
        return text

    display_type_rich._sealroom_flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()

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


def heading(out: Console, title: str) -> None:
    """A titled rule on a terminal; off a terminal (a pipe, a log file) the title alone,
    not a line of PIPE_WIDTH dashes."""
    if out.is_terminal:
        out.rule(title, align="left")
    else:
        out.print(title, highlight=False)


def emit_json(data: Any) -> None:
    """Print machine-readable output on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def fail_all(messages: tuple[str, ...] | list[str], code: int = 1) -> typer.Exit:
    """One ``error:`` line per problem (compose reports every problem at once)."""
    for message in messages:
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def refusals() -> Iterator[None]:
    """Turn a SealroomError into one red line and exit code 1 (traceback only with --debug)."""
    try:
        yield
    except SealroomError as exc:
        if _state["debug"]:
            raise
        if isinstance(exc, ConfigProblems):
            raise fail_all(exc.problems) from None
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
        """Epoch ``epoch`` of ``epochs`` starts, with ``batches`` batches (whole numbers on
        screen even when an event decoded from JSON carries 2.0)."""
        epoch, epochs, batches = int(epoch), int(epochs), int(batches)
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
