"""Where a party's passphrase comes from: a file, the environment, or a hidden prompt.

Order: a source set for this process (``--passphrase-file``, or a demo story's own
throwaway passphrase), then ``$SEALROOM_PASSPHRASE``, then a hidden prompt when stdin is a
terminal. With none of them the command refuses with one line saying how to give one, so a
script never hangs on a prompt nobody sees.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sealroom.errors import IdentityError

ENV_VAR = "SEALROOM_PASSPHRASE"
HOW_TO_GIVE = (
    f"give it with --passphrase-file FILE or ${ENV_VAR}, or run in a terminal to be asked "
    "(or create the party with --no-passphrase to store its keys unencrypted)"
)

# The per-process source, set by the CLI's --passphrase-file or a demo story.
_process: dict[str, bytes | None] = {"value": None}
# Passphrases typed at the prompt, so one command asks once per party.
_typed: dict[str, bytes] = {}


class PassphraseError(IdentityError):
    """No passphrase available, or an empty one."""


class WrongPassphrase(PassphraseError):
    """The passphrase given does not open a key file (or the file was altered)."""


def read_passphrase_file(path: Path) -> bytes:
    """The passphrase in ``path``: its first line, without the line break."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PassphraseError(f"{path}: cannot read passphrase file ({exc.strerror})") from None
    value = raw.split(b"\n", 1)[0].removesuffix(b"\r")
    if not value:
        raise PassphraseError(f"{path}: the passphrase file is empty")
    return value


def use_passphrase_file(path: Path | None) -> None:
    """Make ``path``'s passphrase this process's source (the CLI's --passphrase-file)."""
    if path is not None:
        _process["value"] = read_passphrase_file(path)


@contextmanager
def passphrase_in_effect(value: bytes) -> Iterator[None]:
    """Use ``value`` for every party while the block runs (demo stories' own workspaces)."""
    earlier = _process["value"]
    _process["value"] = value
    try:
        yield
    finally:
        _process["value"] = earlier


def forget_passphrases() -> None:
    """Drop the process's source and typed passphrases (tests run many commands in one)."""
    _process["value"] = None
    _typed.clear()


def existing_passphrase(party: str) -> bytes:
    """The passphrase that should open ``party``'s private keys."""
    given = _given()
    if given is not None:
        return given
    if party in _typed:
        return _typed[party]
    if not _interactive():
        raise PassphraseError(f"party {party!r}: its private keys are encrypted; {HOW_TO_GIVE}")
    value = getpass.getpass(f"passphrase for party {party}: ").encode()
    if not value:
        raise PassphraseError(f"party {party!r}: empty passphrase")
    _typed[party] = value
    return value


def new_passphrase(party: str) -> bytes:
    """A passphrase to encrypt ``party``'s new private keys (typed twice at a prompt)."""
    given = _given()
    if given is not None:
        return given
    if not _interactive():
        raise PassphraseError(f"party {party!r}: no passphrase for its private keys; {HOW_TO_GIVE}")
    first = getpass.getpass(f"new passphrase for party {party}: ").encode()
    if not first:
        raise PassphraseError(
            f"party {party!r}: empty passphrase; use --no-passphrase to store keys unencrypted"
        )
    if getpass.getpass("again: ").encode() != first:
        raise PassphraseError(f"party {party!r}: the two passphrases differ")
    _typed[party] = first
    return first


def _given() -> bytes | None:
    if _process["value"] is not None:
        return _process["value"]
    env = os.environ.get(ENV_VAR)
    if env is None:
        return None
    if not env:
        raise PassphraseError(f"${ENV_VAR} is set but empty")
    return env.encode()


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # stdin closed
        return False
