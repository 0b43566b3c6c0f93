"""Overview, contracts, ledger and budgets in headless Chromium on the private MNIST demo:
each page's key content against what its JSON endpoint says, and a screenshot of each.

Another test may add runs to the shared demo workspace, so every expectation comes from the
API, not from constants."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from sealroom.room.story import StoryResult
from sealroom.workspace import Workspace
from tests.ui.browser import save_page, text_of, wait_for
from tests.ui.serving import live_server, screenshot_dir

pytestmark = pytest.mark.browser


def _api(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=30) as answer:
        return json.load(answer)


def _open(browser: webdriver.Chrome, url: str, heading: str) -> None:
    browser.get(url)
    wait_for(browser, lambda b: heading in text_of(b, "h1"))


def test_overview_contracts_ledger_and_budgets_in_a_browser(
    browser: webdriver.Chrome, dp_story: StoryResult, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    ws = Workspace(dp_story.home)
    with live_server(ws, outputs=(dp_story.outputs,)) as base:
        overview = _api(base, "/api/overview")
        _open(browser, base + "/", "Overview")
        assert text_of(browser, "#workspace-path") == overview["workspace"]
        parties = text_of(browser, "#parties")
        for party in overview["parties"]:
            assert party["name"] in parties and party["fingerprint"] in parties
        counts = browser.find_elements(By.CSS_SELECTOR, "#counts [data-count=ledger_entries] .big")
        assert counts[0].text == str(overview["counts"]["ledger_entries"])
        save_page(browser, shots, "overview")

        (contract, *_) = _api(base, "/api/contracts")
        _open(browser, f"{base}/contracts/{contract['id']}", contract["id"])
        rows = browser.find_elements(By.CSS_SELECTOR, "#signatures tbody tr")
        assert len(rows) == len(contract["parties"]) >= 2
        for row in rows:
            assert row.find_element(By.CSS_SELECTOR, ".badge").text == "verified"
        assert "receipt verified" in text_of(browser, "#receipt")
        save_page(browser, shots, "contracts")

        ledger = _api(base, "/api/ledger")
        _open(browser, base + "/ledger", "Ledger")
        assert "chain verified" in text_of(browser, "#chain")
        listed = browser.find_elements(By.CSS_SELECTOR, "#entries tbody tr.verified")
        assert [int(r.get_attribute("data-seq") or 0) for r in listed] == [
            e["seq"] for e in ledger["entries"]
        ]
        assert ledger["check"]["verified"] is True
        save_page(browser, shots, "ledger")

        budgets = _api(base, "/api/budgets")
        _open(browser, base + "/budgets", "Privacy budgets")
        budget = budgets["budgets"][0]
        card = browser.find_element(By.ID, f"budget-{budget['contract_id']}-{budget['dataset_id']}")
        for part in ("spent", "reserved", "remaining"):
            rect = card.find_element(By.CSS_SELECTOR, f'rect[data-part="{part}"]')
            assert float(rect.get_attribute("data-value") or "nan") == pytest.approx(
                budget[part], rel=1e-5
            )
        assert budget["spent"] > 0
        assert budgets["curves"], "the demo's private run has an ε curve"
        for curve in budgets["curves"]:
            drawn = browser.find_element(By.ID, f"curve-{curve['run_id']}")
            assert drawn.find_elements(By.CSS_SELECTOR, "polyline")
            dots = drawn.find_elements(By.CSS_SELECTOR, "circle")
            assert len(dots) == len(curve["points"]) >= 2
        save_page(browser, shots, "budgets")
