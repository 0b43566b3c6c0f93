"""One error hierarchy: every refusal carries a one-line, user-facing message.

The CLI prints ``str(error)`` and exits 1; tracebacks only with ``--debug``.
Add a subclass per kind of refusal so callers and tests can tell them apart.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 file``, ``2 files``, ``0 entries`` (``many`` for irregular plurals)."""
    if count == 1:
        return f"{count} {word}"
    if many is None:
        many = (
            word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"
        )
    return f"{count} {many}"


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the registered names closest to a mistyped one, else ''."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


class SealroomError(Exception):
    """Base of every refusal sealroom reports to a user."""

    def __init__(self, message: str) -> None:
        # Keep the message on one line: it is what the operator sees.
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class WorkspaceError(SealroomError):
    """The workspace is missing, incomplete or already exists."""


class IdentityError(SealroomError):
    """A party is unknown, duplicated or its key files are unusable."""


class SignatureError(SealroomError):
    """A signature is missing or does not verify."""


class SealError(SealroomError):
    """A sealed package is malformed, tampered with or cannot be opened."""


class WrongKeyError(SealError):
    """The key offered does not open this package."""


class ContractError(SealroomError):
    """A contract is malformed, unsigned, expired or unregistered."""


class LedgerError(SealroomError):
    """The ledger is unreadable or its chain does not verify."""


class AttestationError(SealroomError):
    """Evidence is malformed, stale, replayed or does not verify."""


class KeyReleaseDenied(SealroomError):
    """The key service refused to release a key."""


class PolicyDenied(SealroomError):
    """A policy evaluated to deny; the message lists the violated rules."""


class ConfigError(SealroomError):
    """A pipeline config part is invalid (names the file and field path)."""


class ConfigProblems(ConfigError):
    """Several config problems found at once (compose reports them all, not the first).

    ``problems`` holds one line each, sorted; the CLI prints one line per problem.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(" ".join(p.split()) for p in problems)
        super().__init__("; ".join(self.problems))


class DataError(SealroomError):
    """A dataset cannot be loaded, split or joined."""


class TrainingError(SealroomError):
    """Training or evaluation failed."""


class PrivacyError(SealroomError):
    """A differential-privacy setting is invalid or unsafe."""


class BudgetExceeded(SealroomError):
    """A run would spend more privacy budget than a dataset has left."""


class RoomError(SealroomError):
    """The clean room stopped a run."""


class SandboxError(SealroomError):
    """The room cannot be confined (no Landlock, a bad path, threads already running)."""


class LabError(SealroomError):
    """An experiment, entry point, job or queue of the testbed is invalid or unknown."""
