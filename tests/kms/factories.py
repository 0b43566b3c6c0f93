"""Builders shared by the attest, kms, policy and cli tests: parties, contracts, pipelines."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sealroom.contract.canonical import canonical_bytes
from sealroom.contract.pipeline_signature import PipelineSignature, sign_pipeline
from sealroom.contract.schema import Contract
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import contract_exists, load_contract, save_contract
from sealroom.contract.workflow import register
from sealroom.crypto.identity import Party, create_party, load_party
from sealroom.pipeline.schema import Pipeline
from sealroom.workspace import Workspace

CONTRACT_ID = "mnist-demo"
DATASET_DIGEST = "sha256:" + hashlib.sha256(b"mnist package").hexdigest()
MODEL_DIGEST = "sha256:" + hashlib.sha256(b"base model package").hexdigest()
DECLARATION_DIGEST = "sha256:" + "d" * 64  # the provider's split declaration, pinned


def random_key_b64() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def contract_data(parties: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid MNIST contract as a dict; ``parties`` maps name -> PublicIdentity (or random)."""
    now = datetime.now(UTC)

    def ref(name: str, role: str) -> dict[str, str]:
        if parties and name in parties:
            identity = parties[name]
            return {
                "name": name,
                "role": role,
                "signing_key": identity.signing_key,
                "encryption_key": identity.encryption_key,
            }
        return {
            "name": name,
            "role": role,
            "signing_key": random_key_b64(),
            "encryption_key": random_key_b64(),
        }

    data: dict[str, Any] = {
        "id": CONTRACT_ID,
        "purpose": "train a digit classifier",
        "parties": [
            ref("hospital", "provider"),
            ref("lab", "consumer"),
            ref("operator", "operator"),
        ],
        "datasets": [
            {
                "id": "mnist",
                "provider": "hospital",
                "package_digest": DATASET_DIGEST,
                "declaration_digest": DECLARATION_DIGEST,
                "privacy": {
                    "per_run_epsilon": 3.0,
                    "per_run_delta": 1e-5,
                    "total_epsilon": 9.0,
                    "total_delta": 3e-5,
                },
            }
        ],
        "model": {"owner": "lab", "package_digest": MODEL_DIGEST},
        "consumer": "lab",
        "constraints": {
            "model_formats": ["onnx"],
            "optimizers": ["sgd", "adam"],
            "losses": ["cross_entropy"],
            "metrics": ["accuracy", "f1_macro"],
            "max_epochs": 5,
            "released_outputs": ["model", "metrics", "plots", "privacy_report"],
            "require_privacy": True,
        },
        "room": {"measurements": [], "allow_insecure": True, "tee_types": ["software"]},
        "not_before": (now - timedelta(days=1)).isoformat(),
        "expires": (now + timedelta(days=30)).isoformat(),
    }
    data.update(overrides)
    return data


def make_contract(parties: dict[str, Any] | None = None, **overrides: Any) -> Contract:
    return Contract.model_validate(contract_data(parties, **overrides))


def make_parties(ws: Workspace) -> dict[str, Party]:
    return {
        "hospital": create_party(ws, "hospital", "provider"),
        "lab": create_party(ws, "lab", "consumer"),
        "operator": create_party(ws, "operator", "operator"),
    }


def store_contract(
    ws: Workspace,
    parties: dict[str, Party],
    signers: list[str] | None = None,
    registered: bool = True,
    **overrides: Any,
) -> SignedContract:
    """Sign (by ``signers``, default all), register (if complete and asked) and save a contract."""
    contract = make_contract({n: p.identity for n, p in parties.items()}, **overrides)
    signed = SignedContract(contract=contract)
    for name in signers if signers is not None else list(parties):
        signed = signed.with_signature(name, parties[name].sign(canonical_bytes(contract)))
    if registered:
        signed = register(ws, signed)
    save_contract(ws, signed)
    return signed


def consumer_signature(
    ws: Workspace, digest: str, contract_id: str = CONTRACT_ID, signer: str = "lab"
) -> PipelineSignature | None:
    """``signer``'s signature on pipeline ``digest`` under the stored contract (None if the
    contract is not stored yet)."""
    if not contract_exists(ws, contract_id):
        return None
    contract = load_contract(ws, contract_id).contract
    return sign_pipeline(contract, digest, load_party(ws, signer))


def pipeline_data(**overrides: Any) -> dict[str, Any]:
    """A valid private MNIST pipeline document as a dict; top-level keys may be overridden."""
    data: dict[str, Any] = {
        "name": "mnist-dp",
        "datasets": [
            {
                "id": "mnist",
                "source": {"format": "idx", "images": "train-images", "labels": "train-labels"},
            }
        ],
        "model": {"model": {"format": "onnx", "file": "model.onnx"}, "input_shape": [1, 28, 28]},
        "loss": {"components": {"ce": {"name": "cross_entropy"}}, "expression": "ce"},
        "train": {"optimizer": {"name": "adam", "params": {"lr": 0.001}}, "epochs": 2},
        "eval": {"metrics": ["loss", "accuracy"], "plots": True},
        "privacy": {"epsilon": 2.0, "delta": 1e-5},
    }
    data.update(overrides)
    return data


def make_pipeline(**overrides: Any) -> Pipeline:
    return Pipeline.model_validate(pipeline_data(**overrides))
