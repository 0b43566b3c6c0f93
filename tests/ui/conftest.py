"""Dashboard fixtures: one browser per session and demo workspaces, each played once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver

from sealroom.crypto.passphrase import ENV_VAR as PASSPHRASE_ENV
from sealroom.crypto.passphrase import forget_passphrases
from sealroom.room.story import DEMO_PASSPHRASE, StoryResult, load_scenario
from tests.e2e.stories import QuietNarrator
from tests.ui.browser import chromium
from tests.ui.canaries import DP_STORY_CANARY, CanaryStory
from tests.ui.summary import SUMMARY


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as chrome:
        yield chrome


@pytest.fixture(scope="session")
def dp_story(tmp_path_factory: pytest.TempPathFactory) -> StoryResult:
    """The private MNIST demo, one epoch: a contract, a ledger, a budget spent, a run with
    its receipt, ε curve and decrypted outputs (``result.outputs``). The hospital's raw
    images carry :data:`tests.ui.canaries.DP_STORY_CANARY`, planted before sealing, for
    the scan of every page (test_ui_canary.py)."""
    base = tmp_path_factory.mktemp("dp-story")
    saved = os.environ.get(PASSPHRASE_ENV)
    try:
        story = CanaryStory(
            load_scenario("dp-mnist"), base, QuietNarrator(), epochs=1, canary=DP_STORY_CANARY
        )
        return story.play()
    finally:
        if saved is not None:
            os.environ[PASSPHRASE_ENV] = saved
        forget_passphrases()


def _demo(name: str, base: Path, *extra: str) -> Path:
    """``sealroom demo NAME --home BASE``; the folder it leaves."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "sealroom"), "demo", name, "--home", str(base), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, PASSPHRASE_ENV: DEMO_PASSPHRASE.decode()},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return base


@pytest.fixture(scope="session")
def inference_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The inference demo's folder: its operator workspace is ``<folder>/workspace``."""
    return _demo("inference", tmp_path_factory.mktemp("inference-demo") / "home")


@pytest.fixture(scope="session")
def testbed_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The testbed demo's workspace (the reference experiment at its tiny scale: all 13 jobs,
    heatmaps and curves in about 25 s; jobs run inline)."""
    return _demo(
        "testbed", tmp_path_factory.mktemp("testbed-demo") / "home", "--inline", "--scale", "tiny"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures dashboard tests measured (tests/ui/summary.py), after the results."""
    lines = terminalreporter.config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("dashboard")
        for line in lines:
            terminalreporter.write_line(line)
