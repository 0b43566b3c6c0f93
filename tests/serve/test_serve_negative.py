"""The negative matrix against a real serving room on loopback: every case is refused with
one line, and the client gets no output (nothing is released to it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest

from sealroom.attest.software import SoftwareAttester
from sealroom.contract.provision import ProvisionError, provision_model
from sealroom.crypto.signing import SigningKey, b64
from sealroom.serve.attestation import RoomAttestation
from sealroom.serve.client import ClientError, InferenceClient
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


def _refused(client: InferenceClient, match: str, array: np.ndarray = X) -> None:
    with pytest.raises(ClientError, match=match) as caught:
        client.infer(array)
    assert "\n" not in str(caught.value)


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
    with served.client(url, transport=mitm) as client:
        _refused(client, "not allowed by contract")


def test_wrong_model_digest(room: tuple[Served, str]) -> None:
    served, url = room
    with served.client(url, model_digest="sha256:" + "0" * 64) as client:
        _refused(client, "attestation is for model")


def test_wrong_contract(room: tuple[Served, str]) -> None:
    served, url = room
    other = served.with_contract("tiny-other")
    with served.client(url, signed=other.signed) as client:
        _refused(client, "attestation is for contract digest")


def test_replayed_nonce(room: tuple[Served, str]) -> None:
    """A relay answers a new attestation request with an earlier (genuine) attestation."""
    served, url = room
    mitm = Mitm()
    with served.client(url, transport=mitm) as client:
        client.attest()
        first = mitm.seen[-1][2].content
        mitm.response = lambda req, resp: (
            replaced(resp, first) if req.url.path == "/v1/attestation" else resp
        )
        with pytest.raises(ClientError, match="answers another nonce"):
            client.attest()


def test_stale_evidence(room: tuple[Served, str]) -> None:
    served, url = room
    with served.client(url, clock=lambda: time.time() + 3600) as client:
        _refused(client, "not fresh")


def test_untrusted_attester(room: tuple[Served, str]) -> None:
    served, url = room
    with served.client(url, trusted_attesters={SigningKey.generate().public_b64}) as client:
        _refused(client, "does not trust")


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
    with served.client(url, transport=mitm) as client:
        _refused(client, "report data does not bind")


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
    with served.client(url, transport=mitm) as client:
        _refused(client, r"\(400\).*cannot be opened")


def test_replayed_request(room: tuple[Served, str]) -> None:
    """A relay resends a request the room already answered: refused as a replay."""
    served, url = room
    mitm = Mitm()
    with served.client(url, transport=mitm) as client:
        client.infer(X)
        first = mitm.seen[-1][1]
        mitm.request = lambda r: resent(r, first) if r.url.path == "/v1/infer" else r
        _refused(client, r"\(409\).*replayed")


def test_replayed_response(room: tuple[Served, str]) -> None:
    served, url = room
    mitm = Mitm()
    with served.client(url, transport=mitm) as client:
        client.infer(X)
        old = mitm.seen[-1][2].content
        mitm.response = lambda req, resp: (
            replaced(resp, old) if req.url.path == "/v1/infer" else resp
        )
        _refused(client, "does not open with this request's key")


def test_unknown_client(room: tuple[Served, str]) -> None:
    served, url = room
    with served.client(url, identity=("mallory", SigningKey.generate())) as client:
        _refused(client, r"\(403\).*not listed")


def test_listed_name_with_another_key(room: tuple[Served, str]) -> None:
    served, url = room
    with served.client(url, identity=("alice", SigningKey.generate())) as client:
        _refused(client, r"\(40[13]\)")


def test_anonymous_client_of_a_restricted_contract(room: tuple[Served, str]) -> None:
    served, url = room
    with served.client(url, identity=None) as client:
        _refused(client, r"\(401\)")


def test_wrong_shape_and_dtype(room: tuple[Served, str]) -> None:
    served, url = room
    with served.client(url) as client:
        _refused(client, r"\(4\d\d\)", np.zeros((1, 5), dtype=np.float32))
        _refused(client, r"\(4\d\d\)", np.zeros((1, 4), dtype=np.int64))


def test_over_budget(limited: tuple[Served, str]) -> None:
    served, url = limited
    with served.client(url) as client:
        client.infer(np.zeros((4, 4), dtype=np.float32))
        _refused(client, r"\(429\)|budget")


def test_oversized_body(limited: tuple[Served, str]) -> None:
    served, url = limited
    with served.client(url) as client:
        _refused(client, r"\(413\)", np.zeros((64, 4), dtype=np.float32))


def test_non_owner_cannot_provision_or_retire(room: tuple[Served, str]) -> None:
    served, _ = room
    for action in ("provision", "retire"):
        with pytest.raises(ProvisionError, match="owner"):
            provision_model(served.ws, served.signed.id, "operator", action, served.model_digest)


def test_errors_carry_no_request_content(room: tuple[Served, str]) -> None:
    """What a refusal sends in clear names no client and no value of the request."""
    served, url = room
    mitm = Mitm()
    with served.client(url, identity=("mallory", SigningKey.generate()), transport=mitm) as c:
        with pytest.raises(ClientError):
            c.infer(X)
    text = mitm.seen[-1][2].content.decode()
    assert "mallory" not in text and json.loads(text)["error"]
