"""Fixtures for the serving tests: a workspace whose lab provisions a tiny sealed ONNX
classifier under a registered inference contract, a room serving it on loopback (port 0),
and clients that pin it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from sealroom.attest.software import attestation_key, measure_runtime
from sealroom.contract.canonical import canonical_bytes
from sealroom.contract.schema import Contract
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import save_contract
from sealroom.contract.workflow import register
from sealroom.crypto.identity import Party, create_party
from sealroom.crypto.sealing import seal
from sealroom.crypto.signing import SigningKey
from sealroom.kms.models import ReleasePolicy
from sealroom.kms.service import KeyService
from sealroom.ledger import Ledger
from sealroom.serve.client import InferenceClient
from sealroom.serve.launcher import serve_room
from sealroom.workspace import Workspace

CONTRACT_ID = "tiny-serve"
WEIGHTS = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5.0) / 10.0
FEATURES = 4


def tiny_classifier(weights: np.ndarray = WEIGHTS) -> bytes:
    """x[n, 4] @ W -> logits[n, 3]: the smallest model a classifier output policy fits."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", FEATURES])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])
    w = numpy_helper.from_array(weights.astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])], "g", [x], [y], [w]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@dataclass
class Served:
    """What a test needs: the workspace, its parties, the contract, the client's key."""

    ws: Workspace
    parties: dict[str, Party]
    signed: SignedContract
    model_digest: str
    client_key: SigningKey
    model_key: bytes

    def client(
        self, url: str, *, signed: SignedContract | None = None, **overrides: Any
    ) -> InferenceClient:
        options: dict[str, Any] = {
            "trusted_attesters": {attestation_key(self.ws).public_b64},
            "identity": ("alice", self.client_key),
        }
        options.update(overrides)
        return InferenceClient(url, signed or self.signed, **options)

    def with_contract(
        self, contract_id: str, expires: datetime | None = None, **terms: Any
    ) -> Served:
        """Another registered inference contract for the same model, key imported, provisioned."""
        signed = inference_contract(
            self.ws,
            self.parties,
            self.model_digest,
            self.client_key,
            contract_id=contract_id,
            expires=expires,
            **terms,
        )
        import_model_key(self.ws, signed, self.model_digest, self.model_key)
        provision(self.ws, signed, self.model_digest, self.parties["lab"])
        return Served(
            self.ws, self.parties, signed, self.model_digest, self.client_key, self.model_key
        )


def inference_contract(
    ws: Workspace,
    parties: dict[str, Party],
    model_digest: str,
    client_key: SigningKey,
    *,
    contract_id: str = CONTRACT_ID,
    client_public: str | None = None,
    expires: datetime | None = None,
    **terms: Any,
) -> SignedContract:
    """Propose, sign (lab and operator) and register an inference contract."""
    now = datetime.now(UTC)
    with Ledger.open(ws) as ledger:
        ledger_key = ledger.public_key_b64
    inference: dict[str, Any] = {
        "clients": [{"name": "alice", "signing_key": client_public or client_key.public_b64}],
        "output": {"kind": "probabilities", "decimals": 4},
        "input": {"name": "x", "dtype": "float32", "shape": [FEATURES]},
        "limits": {"max_batch_size": 8, "max_wait_ms": 1},
    }
    inference.update(terms)
    data: dict[str, Any] = {
        "id": contract_id,
        "purpose": "serve a tiny classifier",
        "parties": [
            _ref(parties["lab"], "consumer"),
            _ref(parties["operator"], "operator"),
        ],
        "model": {"owner": "lab", "package_digest": model_digest},
        "consumer": "lab",
        "room": {"measurements": [measure_runtime()], "allow_insecure": True},
        "not_before": (now - timedelta(days=1)).isoformat(),
        "expires": (expires or now + timedelta(days=30)).isoformat(),
        "ledger_public_key": ledger_key,
        "inference": inference,
    }
    contract = Contract.model_validate(data)
    signed = SignedContract(contract=contract)
    for name in ("lab", "operator"):
        signed = signed.with_signature(name, parties[name].sign(canonical_bytes(contract)))
    signed = register(ws, signed)
    save_contract(ws, signed)
    return signed


def _ref(party: Party, role: str) -> dict[str, str]:
    identity = party.identity
    return {
        "name": identity.name,
        "role": role,
        "signing_key": identity.signing_key,
        "encryption_key": identity.encryption_key,
    }


def seal_model(
    ws: Workspace, owner: Party, tmp: Path, onnx: bytes, name: str = "model"
) -> tuple[str, bytes]:
    """Seal ``onnx`` as ``<name>.sealed`` in the workspace's packages; (digest, data key)."""
    source = tmp / f"{name}-src"
    source.mkdir()
    (source / "model.onnx").write_bytes(onnx)
    result = seal(source, owner, ws.packages / f"{name}.sealed")
    (source / "model.onnx").unlink()
    source.rmdir()
    return result.digest, result.data_key


def import_model_key(ws: Workspace, signed: SignedContract, digest: str, key: bytes) -> None:
    policy = ReleasePolicy(
        contract_id=signed.id,
        package_digest=digest,
        measurements=[measure_runtime()],
        allow_insecure=True,
    )
    with KeyService(ws) as service:
        service.import_key(digest, key, "lab", signed.id, policy)


def provision(ws: Workspace, signed: SignedContract, digest: str, owner: Party) -> None:
    """The model owner's signed statement: this package is the contract's model now."""
    from sealroom.contract.provision import provision_model

    provision_model(ws, signed.id, owner.name, "provision", digest)


def build(
    ws: Workspace,
    tmp: Path,
    client_public: str | None = None,
    *,
    onnx: bytes | None = None,
    import_key: bool = True,
    **terms: Any,
) -> Served:
    """Parties, a sealed tiny model, its contract registered, its key imported, provisioned."""
    parties = {
        "lab": create_party(ws, "lab", "consumer"),
        "operator": create_party(ws, "operator", "operator"),
    }
    digest, key = seal_model(ws, parties["lab"], tmp, onnx or tiny_classifier())
    client_key = SigningKey.generate()
    signed = inference_contract(
        ws, parties, digest, client_key, client_public=client_public, **terms
    )
    if import_key:
        import_model_key(ws, signed, digest, key)
    provision(ws, signed, digest, parties["lab"])
    return Served(ws, parties, signed, digest, client_key, key)


@contextmanager
def module_workspace(tmp: Path) -> Iterator[Workspace]:
    """A workspace for a module-scoped room (the per-test fixtures are function-scoped)."""
    from sealroom.crypto.passphrase import ENV_VAR as PASSPHRASE_ENV
    from sealroom.workspace import ENV_VAR

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV_VAR, str(tmp / "ws"))
        patch.setenv(PASSPHRASE_ENV, "test passphrase, not a secret")
        yield Workspace.create(tmp / "ws")


@contextmanager
def running_room(served: Served, timeout: float = 30.0) -> Iterator[tuple[str, str]]:
    """A serving room on 127.0.0.1:0 in a thread; yields (url, instance); stops it after."""
    ready = threading.Event()
    stop = threading.Event()
    where: dict[str, str] = {}
    errors: list[BaseException] = []

    def on_ready(url: str, instance: str) -> None:
        where.update(url=url, instance=instance)
        ready.set()

    def run() -> None:
        try:
            serve_room(served.ws, served.signed.id, port=0, on_ready=on_ready, stop=stop)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        if not ready.wait(timeout) or errors:
            raise AssertionError(f"the room did not start: {errors[0] if errors else 'timeout'}")
        yield where["url"], where["instance"]
    finally:
        stop.set()
        thread.join(timeout)
    if errors:
        raise errors[0]


def room_processes() -> list[int]:
    """Process ids of serving rooms this test process started (its direct children)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = stat.rsplit(")", 1)[1].split()[1]
        if ppid == me and b"sealroom.serve.room" in cmdline:
            found.append(int(entry.name))
    return found


def files_containing(roots: list[Path], needles: list[bytes]) -> list[str]:
    """Every file under ``roots`` holding any of ``needles`` (what a canary test forbids)."""
    hits: list[str] = []
    for root in roots:
        if not root.exists():
            continue
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            hits.extend(f"{path}: {needle[:12]!r}" for needle in needles if needle in data)
    return hits
