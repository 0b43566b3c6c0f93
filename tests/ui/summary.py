"""Lines a dashboard test leaves for the end of the pytest run (the page-load figures), so
that they are seen without ``-s``; ``tests/ui/conftest.py`` prints them."""

from __future__ import annotations

import pytest

SUMMARY = pytest.StashKey[list[str]]()


def add_summary(config: pytest.Config, lines: list[str]) -> None:
    config.stash.setdefault(SUMMARY, []).extend(lines)
