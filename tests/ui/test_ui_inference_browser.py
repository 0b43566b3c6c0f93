"""The Inference page in headless Chromium on the inference demo's workspace: the served
model and its verified receipt commitments; then a room serving a COPY of that workspace
(the shared demo stays as it was), queried by the demo's clinic with its own identity, and
the page's latency histogram drawn with the real request counts."""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from sealroom.crypto.passphrase import passphrase_in_effect
from sealroom.room.story import DEMO_PASSPHRASE
from sealroom.serve.launcher import serve_room
from sealroom.workspace import Workspace
from tests.ui.browser import save_page, text_of, wait_for
from tests.ui.serving import client, live_server, screenshot_dir

pytestmark = pytest.mark.browser

QUERIES = 6
ROW = "#served-models tbody tr"
BARS = "#latency-histogram rect.bar"


def _contract_id(ws: Workspace) -> str:
    (model,) = client(ws).get("/api/inference").json()["models"]
    return str(model["contract_id"])


@contextmanager
def _serving(ws: Workspace, contract_id: str) -> Iterator[str]:
    """``sealroom serve`` for ``ws`` in a thread (as the demo runs it); yields the URL."""
    ready: queue.Queue[str] = queue.Queue()
    stop = threading.Event()

    def operator() -> None:
        try:
            serve_room(ws, contract_id, port=0, stop=stop, on_ready=lambda url, _i: ready.put(url))
        finally:
            ready.put("")

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    try:
        url = ready.get(timeout=120)
        assert url, "the serving room did not start"
        yield url
    finally:
        stop.set()
        thread.join(60)


def _query(demo: Path, url: str, contract_id: str) -> None:
    """The clinic, from its own home, classifies QUERIES held-out digits."""
    from sealroom.attest.software import trusted_attesters
    from sealroom.contract.store import load_contract
    from sealroom.serve.client import InferenceClient
    from sealroom.serve.story import _client_identity

    clinic = Workspace.find(demo / "clinic-home")
    images = np.load(demo / "clinic-data" / "images.npy", allow_pickle=False)[:QUERIES]
    with InferenceClient(
        url,
        load_contract(clinic, contract_id),
        trusted_attesters=trusted_attesters(clinic),
        identity=_client_identity(clinic),
    ) as inference:
        inference.attest()
        for image in images:
            inference.infer(image[np.newaxis])


def test_inference_page_shows_the_demo_and_a_live_room(
    browser: webdriver.Chrome, inference_demo: Path, tmp_path: Path
) -> None:
    ws = Workspace.find(inference_demo / "workspace")
    contract_id = _contract_id(ws)
    with live_server(ws) as base:
        browser.get(base + "/inference")
        row = wait_for(
            browser, lambda c: c.find_element(By.CSS_SELECTOR, "#served-models tbody tr")
        )
        assert contract_id in row.text and "provisioned" in row.text
        browser.get(f"{base}/inference/{contract_id}")
        badges = browser.find_elements(By.CSS_SELECTOR, "#commitments .badge")
        assert badges and all(b.text in ("verified", "intact", "attested") for b in badges)
        assert "intact" in text_of(browser, "#chain")
        assert "not serving" in text_of(browser, "#live")
        assert "sealroom receipt verify" in text_of(browser, "#verify-commands")

    copy = Workspace.find(shutil.copytree(ws.home, tmp_path / "workspace", symlinks=True))
    with passphrase_in_effect(DEMO_PASSPHRASE), _serving(copy, contract_id) as url:
        _query(inference_demo, url, contract_id)
        with live_server(copy) as base:
            browser.get(f"{base}/inference/{contract_id}")
            wait_for(
                browser, lambda c: c.find_elements(By.CSS_SELECTOR, "#latency-histogram rect.bar")
            )
            bars = browser.find_elements(By.CSS_SELECTOR, "#latency-histogram rect.bar")
            assert sum(int(b.get_attribute("data-count") or 0) for b in bars) == QUERIES
            assert text_of(browser, "#total-requests") == str(QUERIES)
            # the data-poll block refreshes itself: wait for a rate from two snapshots
            wait_for(browser, lambda c: "over the last" in text_of(c, "#live"), timeout=20)
            save_page(browser, screenshot_dir(tmp_path), "inference")
