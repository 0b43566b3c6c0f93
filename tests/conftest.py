"""Shared fixtures: every test gets its own empty workspace and a party passphrase."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sealroom.crypto.passphrase import ENV_VAR as PASSPHRASE_ENV
from sealroom.crypto.passphrase import forget_passphrases
from sealroom.workspace import ENV_VAR, Workspace

TEST_PASSPHRASE = "test passphrase, not a secret"


@pytest.fixture(autouse=True)
def party_passphrase(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Party keys are encrypted at rest: every test (and every CLI it runs) gets this one;
    a --passphrase-file one command of a test gave does not outlive the test."""
    monkeypatch.setenv(PASSPHRASE_ENV, TEST_PASSPHRASE)
    forget_passphrases()
    yield TEST_PASSPHRASE
    forget_passphrases()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    home = tmp_path / "ws"
    monkeypatch.setenv(ENV_VAR, str(home))
    return Workspace.create(home)
