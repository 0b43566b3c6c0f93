"""The testbed pages in headless Chromium on the testbed demo's workspace: the job graph, a
job's logs, a comparison of two jobs with its CSV, the heatmap and robustness curves."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from sealroom.ui.charts.graph import STATUS_COLORS
from sealroom.workspace import Workspace
from tests.ui.browser import save_page, text_of, wait_for
from tests.ui.serving import live_server, screenshot_dir

pytestmark = pytest.mark.browser


def test_testbed_pages_in_a_browser(
    browser: webdriver.Chrome, testbed_demo: Path, tmp_path: Path
) -> None:
    shots = screenshot_dir(tmp_path)
    with live_server(Workspace(testbed_demo)) as url:
        overview = httpx.get(f"{url}/api/testbed").json()
        name = overview["experiments"][0]["name"]
        found = httpx.get(f"{url}/api/testbed/experiments/{name}").json()
        jobs = found["jobs"]

        browser.get(f"{url}/testbed")
        wait_for(browser, lambda c: c.find_elements(By.CSS_SELECTOR, "#experiments a"))
        browser.find_element(By.LINK_TEXT, name).click()
        wait_for(browser, lambda c: c.find_elements(By.CSS_SELECTOR, "#live svg"))

        # One node per job, coloured by its status.
        nodes = browser.find_elements(By.CSS_SELECTOR, "#live a.node")
        assert sorted(n.get_attribute("data-job") for n in nodes) == sorted(j["id"] for j in jobs)
        for job in jobs:
            node = browser.find_element(By.CSS_SELECTOR, f'#live a.node[data-job="{job["id"]}"]')
            assert node.get_attribute("data-status") == job["status"]
            fill = node.find_element(By.CSS_SELECTOR, "rect").get_attribute("fill")
            assert fill == STATUS_COLORS[job["status"]][0]

        # The heatmap and the curves, when the evaluations produced results.
        assert found["robustness"] is not None, "the demo's evaluations recorded no results"
        cells = browser.find_elements(By.CSS_SELECTOR, "#heatmaps g.cell")
        robustness = found["robustness"]
        expected = sum(len(h["sources"]) * len(h["targets"]) for h in robustness["heatmaps"])
        assert len(cells) == expected > 0
        curves = browser.find_elements(By.CSS_SELECTOR, "#curves svg polyline")
        assert len(curves) == len(robustness["curves"])
        save_page(browser, shots, "testbed")

        # Compare two succeeded jobs, then fetch the CSV the page links to.
        done = [j["id"] for j in jobs if j["status"] == "succeeded"][:2]
        assert len(done) == 2
        for job_id in done:
            browser.find_element(By.CSS_SELECTOR, f'input[name="jobs"][value="{job_id}"]').click()
        browser.find_element(By.ID, "compare").click()
        wait_for(browser, lambda c: c.find_elements(By.ID, "compare-params"))
        header = text_of(browser, "#compare tr")
        assert all(job_id in header for job_id in done)
        link = browser.find_element(By.ID, "csv").get_attribute("href")
        response = httpx.get(link)
        assert response.status_code == 200
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert {r["job"] for r in rows} == set(done)

        # A training job's page: its log and its metrics.
        train = next(j for j in jobs if j["entry_point"] == "robustness-train")
        browser.get(f"{url}/testbed/experiments/{name}")
        browser.find_element(By.CSS_SELECTOR, f'#live a.node[data-job="{train["id"]}"]').click()
        wait_for(browser, lambda c: c.find_elements(By.CSS_SELECTOR, "pre.log"))
        assert "test accuracy" in text_of(browser, "pre.log")
        assert browser.find_elements(By.CSS_SELECTOR, "#metrics tr")
        save_page(browser, shots, "testbed-job")
