"""The contracts page: signatures verified for real, the registration receipt, the state,
constraints and pins; hostile contract text escaped, forged signatures shown as such."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sealroom.contract.workflow import revoke_contract
from sealroom.workspace import Workspace
from tests.ui.registry_world import proposed, registered, with_parties
from tests.ui.serving import client


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    return with_parties(workspace)


def _parties(detail: dict[str, object]) -> dict[str, tuple[bool, bool]]:
    listed = detail["parties"]
    assert isinstance(listed, list)
    return {p["name"]: (p["signed"], p["signature_verified"]) for p in listed}


def test_a_registered_contract_shows_every_signature_verified(
    ws: Workspace, tmp_path: Path
) -> None:
    signed = registered(ws, tmp_path)
    http = client(ws)
    detail = http.get(f"/api/contracts/{signed.id}").json()
    assert detail["state"] == "registered" and detail["problems"] == []
    assert _parties(detail) == {n: (True, True) for n in ("hospital", "lab", "operator")}
    assert detail["receipt"] == {
        "present": True,
        "verified": True,
        "in_ledger": True,
        "seq": signed.receipt.seq if signed.receipt else None,
        "problem": None,
    }
    assert detail["datasets"][0]["package_digest"] == "sha256:" + "0" * 64
    assert detail["datasets"][0]["privacy"]["total_epsilon"] == 16.0
    assert detail["constraints"]["max_epochs"] == 5
    assert detail["constraints"]["failure_details"] is False  # shown even at its default
    assert detail["model"]["owner"] == "lab"
    page = http.get(f"/contracts/{signed.id}").text
    assert page.count('class="badge ok">verified<') == 3
    assert "receipt verified" in page and f'href="/ledger/{detail["receipt"]["seq"]}"' in page
    listing = http.get("/contracts").text
    assert f'href="/contracts/{signed.id}"' in listing and "status-registered" in listing
    assert [c["id"] for c in http.get("/api/contracts").json()] == [signed.id]


def test_a_proposed_contract_shows_who_has_not_signed(ws: Workspace, tmp_path: Path) -> None:
    signed = proposed(ws, tmp_path)
    detail = client(ws).get(f"/api/contracts/{signed.id}").json()
    assert detail["state"] == "proposed"
    assert _parties(detail) == {
        "hospital": (False, False),
        "lab": (True, True),
        "operator": (False, False),
    }
    assert detail["receipt"]["present"] is False


def test_a_forged_signature_is_shown_not_verified(ws: Workspace, tmp_path: Path) -> None:
    signed = registered(ws, tmp_path)
    path = ws.contracts / f"{signed.id}.signatures.json"
    signatures = json.loads(path.read_text())
    signatures["hospital"] = signatures["lab"]  # a valid signature, by the wrong party
    path.write_text(json.dumps(signatures))
    http = client(ws)
    detail = http.get(f"/api/contracts/{signed.id}").json()
    assert _parties(detail)["hospital"] == (True, False)
    assert _parties(detail)["lab"] == (True, True)
    assert detail["state"] == "invalid"
    assert any("hospital" in p and "does not verify" in p for p in detail["problems"])
    page = http.get(f"/contracts/{signed.id}").text
    assert 'class="badge bad">not verified<' in page


def test_an_edited_contract_breaks_every_signature_and_its_receipt(
    ws: Workspace, tmp_path: Path
) -> None:
    signed = registered(ws, tmp_path)
    path = ws.contracts / f"{signed.id}.json"
    data = json.loads(path.read_text())
    data["constraints"]["max_epochs"] = 500
    path.write_text(json.dumps(data))
    detail = client(ws).get(f"/api/contracts/{signed.id}").json()
    assert {v for v in _parties(detail).values()} == {(True, False)}
    assert detail["receipt"]["verified"] is False and detail["state"] == "invalid"


def test_hostile_contract_text_is_escaped(ws: Workspace, tmp_path: Path) -> None:
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    signed = registered(ws, tmp_path, purpose=evil)
    http = client(ws)
    for url in ("/contracts", f"/contracts/{signed.id}", "/"):
        page = http.get(url).text
        assert "<script>alert" not in page and "<img src=x" not in page, url
    assert "&lt;script&gt;alert(" in http.get(f"/contracts/{signed.id}").text
    assert http.get(f"/api/contracts/{signed.id}").json()["purpose"] == evil


def test_a_revoked_contract_says_who_revoked_it(ws: Workspace, tmp_path: Path) -> None:
    signed = registered(ws, tmp_path)
    revoke_contract(ws, signed.id, "hospital", reason="consent withdrawn")
    http = client(ws)
    detail = http.get(f"/api/contracts/{signed.id}").json()
    assert detail["state"] == "revoked"
    assert detail["revocations"][0]["party"] == "hospital"
    assert detail["revocations"][0]["reason"] == "consent withdrawn"
    assert "Revoked by hospital" in http.get(f"/contracts/{signed.id}").text


def test_a_damaged_contract_file_is_listed_unreadable_not_a_crash(
    ws: Workspace, tmp_path: Path
) -> None:
    registered(ws, tmp_path)
    (ws.contracts / "broken.json").write_text("{not json")
    http = client(ws)
    listed = {c["id"]: c["state"] for c in http.get("/api/contracts").json()}
    assert listed == {"mnist-demo": "registered", "broken": "unreadable"}
    assert http.get("/contracts").status_code == 200
    assert http.get("/contracts/broken").status_code == 400


def test_unknown_or_odd_ids_are_404(ws: Workspace, tmp_path: Path) -> None:
    registered(ws, tmp_path)
    http = client(ws)
    for cid in ("nope", "..x", "MNIST-DEMO", "mnist-demo.signatures", "%2e%2e%2fkeys", "a" * 300):
        assert http.get(f"/contracts/{cid}").status_code == 404, cid
        assert http.get(f"/api/contracts/{cid}").status_code == 404, cid
    assert http.get("/api/contracts/nope").json() == {
        "error": "no contract 'nope' in this workspace"
    }
