"""A command group whose subcommands are imported only when one of them runs.

Importing every command module costs about a second (the key service pulls in FastAPI,
the demo the room, policy checks regopy, serving numpy), which every call paid, even
``--help``. :class:`LazyGroup` instead knows each subcommand by a static
:class:`Lazy` entry: the module that defines it and its one-line help. ``--help`` lists
the entries from that table; running ``sealroom ledger verify`` imports
``sealroom.cli.ledger`` and nothing else. tests/cli/test_cli_startup.py checks that the
table's help matches each command's own, and that light commands stay light.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

# click's UsageError, whichever click typer uses (its own copy from 0.2x, click before).
_UsageError: type[Exception] = typer.BadParameter.__mro__[1]


@dataclass(frozen=True)
class Lazy:
    """A subcommand known by name: the module defining it and its one-line help.

    ``command`` names the module's command function; without it the module's typer app
    ``app`` is a group (``sealroom <name> …``).
    """

    module: str
    help: str
    command: str | None = None


def load(name: str, entry: Lazy) -> Any:
    """Import ``entry``'s module and build its click command exactly as ``add_typer`` would."""
    module = importlib.import_module(entry.module)
    holder = typer.Typer(add_completion=False)
    if entry.command is None:
        holder.add_typer(module.app, name=name)
    else:
        holder.command(name)(getattr(module, entry.command))
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """A TyperGroup whose table-listed subcommands load on first use (``typer.Typer(cls=…)``)."""

    lazy: Mapping[str, Lazy] = {}  # set by a subclass: the static table

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self.lazy:
            return command
        entry = self.lazy[cmd_name]
        if self._listing:  # help output needs the name and the line, not the module
            return TyperCommand(name=cmd_name, help=entry.help)
        command = load(cmd_name, entry)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in self.lazy:
            self.get_command(ctx, args[0])  # loaded now, typer resolves it as any other
            return super().resolve_command(ctx, args)
        try:
            return super().resolve_command(ctx, args)
        except _UsageError as exc:  # an unknown name: suggest among the lazy names too
            message = str(getattr(exc, "message", "")).split(". Did you mean")[0]
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches and self.suggest_commands:
                suggestions = ", ".join(f"{m!r}" for m in matches)
                exc.message = f"{message.rstrip('.')}. Did you mean {suggestions}?"  # type: ignore[attr-defined]
            raise
