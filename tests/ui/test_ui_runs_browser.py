"""The Runs pages in headless Chromium: the private demo's run (stages, verified badge,
metrics), a plain MNIST run's released plots, and a live run watched until it completes."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from sealroom.crypto.passphrase import ENV_VAR as PASSPHRASE_ENV
from sealroom.crypto.passphrase import forget_passphrases
from sealroom.room.launcher import run_room
from sealroom.room.story import Story, StoryResult, load_scenario
from sealroom.workspace import Workspace
from tests.e2e.stories import QuietNarrator
from tests.ui.browser import save_page, text_of, wait_for
from tests.ui.serving import client, live_server, screenshot_dir

pytestmark = pytest.mark.browser

LIVE_RUN = "run-live-watched"
RUN_WAIT_S = 300.0  # a whole room run on a loaded two-core machine


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoryResult]:
    """The plain MNIST story, two epochs: a run with plots and per-epoch curves, and a
    contract without a privacy budget, so that a second run may follow."""
    base = tmp_path_factory.mktemp("mnist-story")
    saved = os.environ.get(PASSPHRASE_ENV)
    try:
        yield Story(load_scenario("mnist"), base, QuietNarrator(), epochs=2).play()
    finally:
        if saved is not None:
            os.environ[PASSPHRASE_ENV] = saved
        forget_passphrases()


def _states(chrome: webdriver.Chrome) -> dict[str, str]:
    """Each stage's state, read in one script: the live timeline may be replaced between
    two WebDriver calls (a server-sent fragment)."""
    states: dict[str, str] = chrome.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#stages li')]"
        ".map(li => [li.dataset.stage, li.dataset.state]));"
    )
    return states


def _text(chrome: webdriver.Chrome, css: str) -> str:
    """An element's text, read in one script (see _states)."""
    text: str = chrome.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : '';",
        css,
    )
    return text


def test_the_private_demo_run_shows_its_stages_badge_and_metrics(
    browser: webdriver.Chrome, dp_story: StoryResult
) -> None:
    ws = Workspace.find(dp_story.home)
    run_id = dp_story.receipt.run_id
    with live_server(ws, outputs=(dp_story.outputs,)) as url:
        browser.get(f"{url}/runs/{run_id}")
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#final-metrics"))
        assert set(_states(browser).values()) == {"done"} and len(_states(browser)) == 8
        assert text_of(browser, "h2 .badge") == "verified"
        assert "accuracy" in text_of(browser, "#final-metrics")
        assert browser.find_elements(By.CSS_SELECTOR, "#metric-charts svg")  # the ε curve
        browser.get(f"{url}/runs")
        assert run_id in text_of(browser, "#runs")


def test_a_plain_run_shows_its_plots_and_curves(
    browser: webdriver.Chrome, mnist: StoryResult, tmp_path: Path
) -> None:
    ws = Workspace.find(mnist.home)
    run_id = mnist.receipt.run_id
    with live_server(ws, outputs=(mnist.outputs,)) as url:
        browser.get(f"{url}/runs/{run_id}")
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#plots img"))
        loaded = wait_for(
            browser,
            lambda d: d.execute_script(
                "const imgs = [...document.querySelectorAll('#plots img')];"
                "return imgs.every(i => i.complete && i.naturalWidth > 0) && imgs.length;"
            ),
        )
        assert loaded == 3
        assert len(browser.find_elements(By.CSS_SELECTOR, "#metric-charts svg")) >= 2
        assert browser.find_elements(By.CSS_SELECTOR, "#confusion")
        save_page(browser, screenshot_dir(tmp_path), "run")


def test_a_plot_whose_file_was_edited_is_not_served(mnist: StoryResult, tmp_path: Path) -> None:
    ws = Workspace.find(mnist.home)
    run_id = mnist.receipt.run_id
    outputs = shutil.copytree(mnist.outputs, tmp_path / "outputs")
    app = client(ws, outputs=(outputs,))
    assert app.get(f"/runs/{run_id}/outputs/training_curves.png").status_code == 200
    with (outputs / "training_curves.png").open("ab") as handle:
        handle.write(b"\x00")
    assert app.get(f"/runs/{run_id}/outputs/training_curves.png").status_code == 404
    assert app.get(f"/api/runs/{run_id}").json()["plots"] == [
        "confusion_matrix.png",
        "per_class.png",
    ]


def test_a_live_run_is_watched_until_it_completes(
    browser: webdriver.Chrome, mnist: StoryResult, tmp_path: Path
) -> None:
    """The run is held at its first event (the operator's relay blocks, so the room waits
    for its next answer) until the page shows it running; then it goes on, and the page
    follows it over server-sent events to its verified receipt."""
    ws = Workspace.find(mnist.home)
    pipeline = mnist.home.parent / "consumer-lab" / "pipeline.json"
    contract_id = mnist.receipt.record.contract_id
    under_way, go_on = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def hold(event: object) -> None:
        under_way.set()
        go_on.wait(RUN_WAIT_S)

    def run() -> None:
        try:
            outcome["receipt"] = run_room(ws, contract_id, pipeline, on_event=hold, run_id=LIVE_RUN)
        except BaseException as exc:  # reported by the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert under_way.wait(RUN_WAIT_S), outcome.get("error")
        with live_server(ws) as url:
            browser.get(f"{url}/runs/{LIVE_RUN}")
            assert _text(browser, "#run-status") == "running"
            assert _states(browser)["contract"] == "running"
            live = browser.find_element(By.ID, "run-live")
            assert live.get_attribute("data-sse") == f"/runs/{LIVE_RUN}/events"
            go_on.set()
            wait_for(
                browser,
                lambda d: d.find_elements(By.CSS_SELECTOR, "h2 .badge"),
                timeout=RUN_WAIT_S,
            )
            assert _text(browser, "#run-status") == "completed"
            assert set(_states(browser).values()) == {"done", "skipped"}
            assert _states(browser)["budget"] == "skipped"  # a run without privacy
            badge = text_of(browser, "h2 .badge")
            assert badge == "verified", text_of(browser, "#receipt-reason")
            assert not browser.find_elements(By.CSS_SELECTOR, "[data-sse]")
            browser.get(f"{url}/runs")
            rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr.run-row")
            assert len(rows) == 2 and LIVE_RUN in rows[0].text
            save_page(browser, screenshot_dir(tmp_path), "runs")
    finally:
        go_on.set()
        thread.join(RUN_WAIT_S)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["receipt"].run_id == LIVE_RUN
