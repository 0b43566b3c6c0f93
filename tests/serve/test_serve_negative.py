"""The negative matrix against a real serving room on loopback: every case is refused with
one line, and the client gets no output (nothing is released to it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from sealroom.attest.software import SoftwareAttester
from sealroom.contract.provision import ProvisionError, provision_model
from sealroom.crypto.hpke_context import RoomHpkeKey
from sealroom.crypto.signing import SigningKey, b64
from sealroom.serve.attestation import RoomAttestation, attest_room
from sealroom.serve.client import MAX_RESPONSE_BYTES, ClientError, InferenceClient
from tests.serve.helpers import Served, build, module_workspace, running_room

X = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
Rewrite = Callable[[httpx.Request, httpx.Response], httpx.Response]


class Mitm(httpx.BaseTransport):
    """A relay on the path: it may rewrite requests and responses (it sees only what the
    client sends in clear: the attestation, sealed bodies, errors)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.request: Callable[[httpx.Request], httpx.Request] | None = None
        self.response: Rewrite | None = None
        self.seen: list[tuple[httpx.Request, bytes, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        if self.request is not None:
            request = self.request(request)
        response = self.inner.handle_request(request)
        response.read()
        self.seen.append((request, body, response))
        return self.response(request, response) if self.response is not None else response


def replaced(response: httpx.Response, content: bytes) -> httpx.Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return httpx.Response(response.status_code, headers=headers, content=content)


def resent(request: httpx.Request, content: bytes) -> httpx.Request:
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    return httpx.Request(request.method, request.url, headers=headers, content=content)


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    tmp = tmp_path_factory.mktemp("negative")
    with module_workspace(tmp) as ws:
        served = build(ws, tmp)
        with running_room(served) as (url, _):
            yield served, url


@pytest.fixture(scope="module")
def limited(
    room: tuple[Served, str],
) -> Iterator[tuple[Served, str]]:
    served = room[0].with_contract(
        "tiny-limited",
        query_budget=4,
        limits={"max_batch_size": 8, "max_wait_ms": 1, "max_body_bytes": 1024},
    )
    with running_room(served) as (url, _):
        yield served, url


def watched(served: Served, url: str, **options: Any) -> tuple[InferenceClient, Mitm]:
    """A client whose traffic a Mitm records (the test's own, when it passes one)."""
    mitm = options.setdefault("transport", Mitm())
    assert isinstance(mitm, Mitm)
    return served.client(url, **options), mitm


def _refused(client: InferenceClient, mitm: Mitm, match: str, array: np.ndarray = X) -> None:
    """Refused with one line, and nothing released: a refused attestation sends no request;
    a refused request gets a JSON error, never a sealed answer the client could open."""
    before = len(mitm.seen)
    with pytest.raises(ClientError, match=match) as caught:
        client.infer(array)
    assert "\n" not in str(caught.value)
    attested = client.attestation is not None
    sent = [(r, resp) for r, _, resp in mitm.seen[before:] if r.url.path == "/v1/infer"]
    if not attested:
        assert sent == [], "a request went to a room the client did not trust"
        return
    for _, response in sent:
        if response.status_code != 200:
            assert response.headers["content-type"] == "application/json"


def test_the_honest_path_works_and_documents_its_checks(room: tuple[Served, str]) -> None:
    served, url = room
    with served.client(url) as client:
        result = client.infer(X)
        checks = dict(client.verification_document())
    assert len(result.outputs) == 1
    for check in ("attestation signature", "measurement", "model", "receipt", "response"):
        assert checks[check].startswith("ok: ")


def test_wrong_measurement(room: tuple[Served, str]) -> None:
    """A relay (or a host) answering with evidence of another room build: trusted signer,
    correct binding, but a measurement the contract does not allow."""
    served, url = room
    mitm = Mitm()

    def other_build(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path != "/v1/attestation":
            return response
        att = RoomAttestation.model_validate_json(response.content)
        forged = SoftwareAttester(served.ws, measurement="ab" * 32).attest(att.report_data())
        return replaced(
            response, att.model_copy(update={"evidence": forged}).model_dump_json().encode()
        )

    mitm.response = other_build
    client, mitm = watched(served, url, transport=mitm)
    with client:
        _refused(client, mitm, "not allowed by contract")


def test_oversized_answer_is_not_held(room: tuple[Served, str]) -> None:
    """A relay (or room) answering with more than the client's cap: refused, not held."""
    served, url = room
    mitm = Mitm()
    flood = b"x" * (MAX_RESPONSE_BYTES + 1)
    mitm.response = lambda request, response: replaced(response, flood)
    client, mitm = watched(served, url, transport=mitm)
    with client:
        _refused(client, mitm, "too large")


def test_wrong_model_digest(room: tuple[Served, str]) -> None:
    served, url = room
    client, mitm = watched(served, url, model_digest="sha256:" + "0" * 64)
    with client:
        _refused(client, mitm, "attestation is for model")


def test_wrong_contract(room: tuple[Served, str]) -> None:
    served, url = room
    other = served.with_contract("tiny-other")
    client, mitm = watched(served, url, signed=other.signed)
    with client:
        _refused(client, mitm, "attestation is for contract digest")


def test_replayed_nonce(room: tuple[Served, str]) -> None:
    """A relay answers a new attestation request with an earlier (genuine) attestation."""
    served, url = room
    mitm = Mitm()
    client, mitm = watched(served, url, transport=mitm)
    with client:
        client.attest()
        first = mitm.seen[-1][2].content
        mitm.response = lambda req, resp: (
            replaced(resp, first) if req.url.path == "/v1/attestation" else resp
        )
        with pytest.raises(ClientError, match="answers another nonce"):
            client.attest()


def test_stale_evidence(room: tuple[Served, str]) -> None:
    served, url = room
    client, mitm = watched(served, url, clock=lambda: time.time() + 3600)
    with client:
        _refused(client, mitm, "not fresh")


def test_untrusted_attester(room: tuple[Served, str]) -> None:
    served, url = room
    client, mitm = watched(served, url, trusted_attesters={SigningKey.generate().public_b64})
    with client:
        _refused(client, mitm, "does not trust")


def test_swapped_hpke_key(room: tuple[Served, str]) -> None:
    """A relay swaps the attested HPKE key for its own: the evidence binds the room's."""
    served, url = room
    mitm = Mitm()

    def swap(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        if request.url.path != "/v1/attestation":
            return response
        att = RoomAttestation.model_validate_json(response.content)
        mine = att.model_copy(update={"hpke_public_key": b64(b"\x07" * 32)})
        return replaced(response, mine.model_dump_json().encode())

    mitm.response = swap
    client, mitm = watched(served, url, transport=mitm)
    with client:
        _refused(client, mitm, "report data does not bind")


def test_receipt_naming_another_hpke_key(room: tuple[Served, str]) -> None:
    """A room whose receipts point at a startup attestation with another HPKE key than the
    one the client attested (evidence genuine and self-consistent): refused."""
    served, url = room
    mitm = Mitm()
    client, mitm = watched(served, url, transport=mitm)
    with client:
        result = client.infer(X)
        body = mitm.seen[-1][1]
        genuine = result.proof.attestation
        other = attest_room(
            SoftwareAttester(served.ws).attest,
            nonce=genuine.nonce,
            hpke_public_key=RoomHpkeKey.generate().public_raw,
            room_key=genuine.room_key,
            model_digest=genuine.model_digest,
            contract_digest=genuine.contract_digest,
            instance=genuine.instance,
        )
        forged = result.proof.model_copy(update={"attestation": other})
        with pytest.raises(ClientError, match=r"^HPKE key: the receipt names"):
            client.check_receipt(forged.model_dump(mode="json"), body, result.outputs)
        assert client.check_receipt(result.proof.model_dump(mode="json"), body, result.outputs)


def test_tampered_request_ciphertext(room: tuple[Served, str]) -> None:
    served, url = room
    mitm = Mitm()

    def flip(request: httpx.Request) -> httpx.Request:
        if request.url.path != "/v1/infer":
            return request
        body = bytearray(request.read())
        body[-1] ^= 1
        return resent(request, bytes(body))

    mitm.request = flip
    client, mitm = watched(served, url, transport=mitm)
    with client:
        _refused(client, mitm, r"\(400\).*cannot be opened")


def test_replayed_request(room: tuple[Served, str]) -> None:
    """A relay resends a request the room already answered: refused as a replay."""
    served, url = room
    mitm = Mitm()
    client, mitm = watched(served, url, transport=mitm)
    with client:
        client.infer(X)
        first = mitm.seen[-1][1]
        mitm.request = lambda r: resent(r, first) if r.url.path == "/v1/infer" else r
        _refused(client, mitm, r"\(409\).*replayed")


def test_replayed_response(room: tuple[Served, str]) -> None:
    served, url = room
    mitm = Mitm()
    client, mitm = watched(served, url, transport=mitm)
    with client:
        client.infer(X)
        old = mitm.seen[-1][2].content
        mitm.response = lambda req, resp: (
            replaced(resp, old) if req.url.path == "/v1/infer" else resp
        )
        _refused(client, mitm, "does not open with this request's key")


def test_unknown_client(room: tuple[Served, str]) -> None:
    served, url = room
    client, mitm = watched(served, url, identity=("mallory", SigningKey.generate()))
    with client:
        _refused(client, mitm, r"\(403\).*not listed")


def test_listed_name_with_another_key(room: tuple[Served, str]) -> None:
    served, url = room
    client, mitm = watched(served, url, identity=("alice", SigningKey.generate()))
    with client:
        _refused(client, mitm, r"\(40[13]\)")


def test_anonymous_client_of_a_restricted_contract(room: tuple[Served, str]) -> None:
    served, url = room
    client, mitm = watched(served, url, identity=None)
    with client:
        _refused(client, mitm, r"\(401\)")


def test_wrong_shape_and_dtype(room: tuple[Served, str]) -> None:
    served, url = room
    client, mitm = watched(served, url)
    with client:
        _refused(client, mitm, r"\(4\d\d\)", np.zeros((1, 5), dtype=np.float32))
        _refused(client, mitm, r"\(4\d\d\)", np.zeros((1, 4), dtype=np.int64))


def test_over_budget(limited: tuple[Served, str]) -> None:
    served, url = limited
    client, mitm = watched(served, url)
    with client:
        client.infer(np.zeros((4, 4), dtype=np.float32))
        _refused(client, mitm, r"\(429\)|budget")


def test_oversized_body(limited: tuple[Served, str]) -> None:
    served, url = limited
    client, mitm = watched(served, url)
    with client:
        _refused(client, mitm, r"\(413\)", np.zeros((64, 4), dtype=np.float32))


def test_non_owner_cannot_provision_or_retire(room: tuple[Served, str]) -> None:
    served, _ = room
    for action in ("provision", "retire"):
        with pytest.raises(ProvisionError, match="owner"):
            provision_model(served.ws, served.signed.id, "operator", action, served.model_digest)


def test_errors_carry_no_request_content(room: tuple[Served, str]) -> None:
    """What a refusal sends in clear names no client and no value of the request."""
    served, url = room
    mitm = Mitm()
    stranger = ("mallory", SigningKey.generate())
    with served.client(url, identity=stranger, transport=mitm) as c, pytest.raises(ClientError):
        c.infer(X)
    text = mitm.seen[-1][2].content.decode()
    assert "mallory" not in text and json.loads(text)["error"]
