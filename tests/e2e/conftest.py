"""The MNIST story (tiny settings) that the end-to-end tests share, played once a session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sealroom.crypto.passphrase import ENV_VAR as PASSPHRASE_ENV
from sealroom.crypto.passphrase import forget_passphrases
from sealroom.room.story import DEMO_PASSPHRASE, Story, load_scenario
from sealroom.workspace import Workspace
from tests.e2e.stories import PlayedStory, QuietNarrator, plaintext_markers


@pytest.fixture(autouse=True)
def party_passphrase(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The stories' parties are encrypted under the demo passphrase: tests that act as them
    afterwards (sign, decrypt) give the same one."""
    monkeypatch.setenv(PASSPHRASE_ENV, DEMO_PASSPHRASE.decode())
    forget_passphrases()
    yield DEMO_PASSPHRASE.decode()
    forget_passphrases()


@pytest.fixture(scope="session")
def mnist_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlayedStory]:
    """The whole MNIST demo, one epoch; rooms get their own TMPDIR so that it can be scanned."""
    base = tmp_path_factory.mktemp("story")
    tmpdir = tmp_path_factory.mktemp("room-tmp")
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmpdir)
    try:
        narrator = QuietNarrator()
        result = Story(load_scenario("mnist"), base, narrator, epochs=1).play()
        ws = Workspace.find(result.home)
        markers = plaintext_markers(base / "provider-hospital" / "mnist")
        yield PlayedStory(base, ws, result, narrator, markers, tmpdir)
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved
