"""A key service check that failed: its reason is what the ledger and the caller see."""

from __future__ import annotations

from typing import Any


class Denied(Exception):
    """One release check failed; ``facts`` go into the ``key.denied`` entry beside the reason."""

    def __init__(self, reason: str, **facts: Any) -> None:
        super().__init__(reason)
        self.reason = " ".join(reason.split())
        self.facts = facts
