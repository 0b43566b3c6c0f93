"""Fixtures of the API and client tests: a lab whose scheduler ticks in a thread, and an
HTTP test client on its API with the catalogue seeded. A module with a lab of its own
(tracking, scheduler) defines its own ``lab`` fixture, which takes precedence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.lab.lab_api_helpers import TickingLab, api_client, seed_catalogue, ticking_lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TickingLab]:
    with ticking_lab(tmp_path / "lab", monkeypatch) as running:
        yield running


@pytest.fixture
def http(lab: TickingLab) -> TestClient:
    client = api_client(lab)
    seed_catalogue(client)
    return client
