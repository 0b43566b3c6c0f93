"""The ledger page: entries newest first, the chain's verification, the first bad entry
highlighted after each kind of tampering, and garbage queries refused in one line."""

from __future__ import annotations

import re
import threading
import time

import pytest
from fastapi.testclient import TestClient

from sealroom.workspace import Workspace
from tests.ui.registry_world import append, tamper
from tests.ui.serving import client

ROW = re.compile(r'<tr id="seq-(\d+)" class="(\w+)"')


def rows(html: str) -> dict[int, str]:
    """seq -> row class (verified, bad, untrusted, unverified), as listed."""
    return {int(seq): cls for seq, cls in ROW.findall(html)}


def _ws(workspace: Workspace, n: int = 8) -> TestClient:
    append(workspace, n)
    return client(workspace)


def test_entries_are_listed_newest_first_and_the_chain_verifies(workspace: Workspace) -> None:
    http = _ws(workspace)
    page = http.get("/ledger")
    assert page.status_code == 200
    listed = rows(page.text)
    assert list(listed) == list(range(8, 0, -1))
    assert set(listed.values()) == {"verified"}
    assert "chain verified" in page.text and 'id="first-bad"' not in page.text
    api = http.get("/api/ledger").json()
    assert api["check"]["verified"] is True and api["check"]["entries"] == 8
    assert [e["seq"] for e in api["entries"]] == list(range(8, 0, -1))
    assert api["entries"][0]["payload"] == {"i": 7, "note": "entry 7"}


def test_pages_of_100_and_the_kind_filter(workspace: Workspace) -> None:
    append(workspace, 130)
    append(workspace, 3, kind="run.failed")
    http = client(workspace)
    first, second = rows(http.get("/ledger").text), rows(http.get("/ledger?page=2").text)
    assert list(first) == list(range(133, 33, -1))
    assert list(second) == list(range(33, 0, -1))
    assert rows(http.get("/ledger?page=3").text) == {}
    only = rows(http.get("/ledger?kind=run.failed").text)
    assert list(only) == [133, 132, 131]
    api = http.get("/api/ledger?offset=10&limit=5&kind=test.event").json()
    assert [e["seq"] for e in api["entries"]] == [120, 119, 118, 117, 116]
    assert api["total"] == 130


def test_one_entry_in_full_with_its_payload_escaped(workspace: Workspace) -> None:
    from sealroom.ledger import Ledger

    with Ledger.open(workspace) as ledger:
        ledger.append("contract.note", {"name": "<script>alert(1)</script>"})
    http = client(workspace)
    page = http.get("/ledger/1")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert http.get("/api/ledger/1").json()["payload"] == {"name": "<script>alert(1)</script>"}


def test_an_edited_payload_is_highlighted_as_the_first_bad_entry(workspace: Workspace) -> None:
    http = _ws(workspace)
    assert rows(http.get("/ledger").text)[3] == "verified"  # cached as verified first
    tamper(workspace, "UPDATE entries SET payload = ? WHERE seq = 3", '{"i":99,"note":"forged"}')
    page = http.get("/ledger")
    listed = rows(page.text)
    assert listed[3] == "bad"
    assert all(listed[s] == "untrusted" for s in range(4, 9))
    assert all(listed[s] == "verified" for s in (1, 2))
    assert 'href="/ledger?page=1#seq-3"' in page.text
    check = http.get("/api/ledger").json()["check"]
    assert check["verified"] is False and check["first_bad"] == 3
    detail = http.get("/ledger/3")
    assert "was edited" in detail.text and "trust-bad" in detail.text
    assert http.get("/api/ledger/5").json()["trust"] == "untrusted"


def test_the_banner_jumps_to_the_page_holding_the_first_bad_entry(workspace: Workspace) -> None:
    http = _ws(workspace, 250)
    tamper(workspace, "UPDATE entries SET payload = ? WHERE seq = 20", '{"i":0}')
    page = http.get("/ledger")
    assert 'href="/ledger?page=3#seq-20"' in page.text  # 230 newer entries: page 3
    assert rows(http.get("/ledger?page=3").text)[20] == "bad"


def test_a_deleted_entry_gets_a_row_of_its_own(workspace: Workspace) -> None:
    http = _ws(workspace)
    tamper(workspace, "DELETE FROM entries WHERE seq = 5")
    page = http.get("/ledger")
    listed = rows(page.text)
    assert list(listed) == [8, 7, 6, 5, 4, 3, 2, 1]
    assert listed[5] == "bad" and "missing (deleted)" in page.text
    assert listed[6] == "untrusted" and listed[4] == "verified"
    assert http.get("/ledger/5").status_code == 404


def test_a_broken_head_signature_marks_the_head(workspace: Workspace) -> None:
    http = _ws(workspace)
    tamper(workspace, "UPDATE head SET signature = ?", "AAAA")
    listed = rows(http.get("/ledger").text)
    assert listed[8] == "bad" and listed[7] == "verified"
    reason = http.get("/api/ledger").json()["check"]["reason"]
    assert "head" in reason


def test_without_the_public_key_entries_show_unverified(workspace: Workspace) -> None:
    http = _ws(workspace, 3)
    (workspace.keys / "ledger.pub").unlink()
    page = http.get("/ledger")
    assert set(rows(page.text).values()) == {"unverified"}
    assert "ledger.pub" in page.text


def test_garbage_queries_are_one_line_refusals_not_errors(workspace: Workspace) -> None:
    http = _ws(workspace, 3)
    for url in (
        "/ledger?page=abc",
        "/ledger?page=0",
        "/ledger?page=-1",
        "/ledger?page=1e9",
        "/ledger?page=" + "9" * 40,
        "/ledger?kind=<script>",
        "/api/ledger?limit=0",
        "/api/ledger?limit=100000",
        "/api/ledger?offset=x",
    ):
        answer = http.get(url)
        assert answer.status_code == 400, url
        assert "<script>" not in answer.text
        if url.startswith("/api/"):
            assert "\n" not in answer.json()["error"]
    for url in ("/ledger/0", "/ledger/99", "/ledger/abc", "/ledger/..%2F..", "/api/ledger/-1"):
        assert http.get(url).status_code == 404, url
    assert rows(http.get("/ledger?kind=no.such.kind").text) == {}


def test_an_edit_under_a_growing_ledger_is_still_caught(workspace: Workspace) -> None:
    """Re-verification after an append checks only the new entries' signatures, but only
    when the rows verified before are byte for byte unchanged: an old row edited together
    with an append is still found."""
    http = _ws(workspace, 6)
    assert http.get("/api/ledger").json()["check"]["verified"] is True
    append(workspace, 2)
    check = http.get("/api/ledger").json()["check"]
    assert check["verified"] is True and check["entries"] == 8
    tamper(workspace, "UPDATE entries SET payload = ? WHERE seq = 2", '{"i":5,"note":"x"}')
    append(workspace, 1)
    check = http.get("/api/ledger").json()["check"]
    assert check["first_bad"] == 2 and check["verified"] is False


def test_a_thousand_entries_load_fast_once_verified(workspace: Workspace) -> None:
    """Prints the load times (the 300 ms target is measured, not asserted): the first page
    waits at most 0.2 s for the chain's walk, then says it is under way."""
    http = _ws(workspace, 1000)
    start = time.perf_counter()
    first = http.get("/ledger")
    cold = time.perf_counter() - start
    assert first.status_code == 200
    assert http.get("/api/ledger?limit=1").json()["check"]["verified"] is True  # waits
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        assert http.get("/ledger").status_code == 200
        timings.append(time.perf_counter() - start)
    print(
        f"\n/ledger with 1,000 entries: first load {cold * 1000:.0f} ms (chain walk started), "
        f"then {min(timings) * 1000:.0f}-{max(timings) * 1000:.0f} ms (verified, cached)"
    )
    assert set(rows(http.get("/ledger").text).values()) == {"verified"}
    assert rows(http.get("/ledger?page=10").text).keys() == set(range(100, 0, -1))


def test_a_page_does_not_wait_for_a_long_walk(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the chain's walk is under way a page says so and polls a card that answers
    once it is done; the API waits for the answer."""
    from sealroom.ui.views import ledger_state

    release = threading.Event()
    real_walk = ledger_state._walk

    def slow_walk(*args: object) -> None:
        release.wait(30)
        real_walk(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger_state, "_walk", slow_walk)
    http = _ws(workspace, 3)
    page = http.get("/ledger")
    assert 'data-poll="/ledger/check"' in page.text and "verifying" in page.text
    assert set(rows(page.text).values()) == {"unverified"}
    release.set()
    assert http.get("/api/ledger").json()["check"]["verified"] is True
    assert "chain verified" in http.get("/ledger/check").text
