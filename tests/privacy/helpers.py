"""Contracts and tiny private pipelines for the privacy tests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from sealroom.contract.schema import Constraints, Contract
from sealroom.pipeline.schema import Pipeline
from tests.train.tiny import classification_pipeline

KEY = base64.b64encode(bytes(32)).decode()


def make_contract(
    contract_id: str = "c1",
    datasets: dict[str, tuple[float, float, float, float] | None] | None = None,
    released: list[str] | None = None,
    metrics: list[str] | None = None,
) -> Contract:
    """A contract whose datasets carry (per-run ε, per-run δ, total ε, total δ) terms."""
    datasets = datasets if datasets is not None else {"mnist": (3.0, 1e-5, 8.0, 1e-4)}
    now = datetime.now(UTC)
    refs: list[dict[str, Any]] = []
    for dataset_id, terms in datasets.items():
        ref: dict[str, Any] = {
            "id": dataset_id,
            "provider": "hospital",
            "package_digest": "sha256:" + "0" * 64,
        }
        if terms is not None:
            ref["privacy"] = dict(
                zip(
                    ["per_run_epsilon", "per_run_delta", "total_epsilon", "total_delta"],
                    terms,
                    strict=True,
                )
            )
        refs.append(ref)
    return Contract.model_validate(
        {
            "id": contract_id,
            "purpose": "privacy tests",
            "parties": [
                {"name": "hospital", "role": "provider", "signing_key": KEY, "encryption_key": KEY},
                {"name": "lab", "role": "consumer", "signing_key": KEY, "encryption_key": KEY},
            ],
            "datasets": refs,
            "consumer": "lab",
            "constraints": Constraints(
                model_formats=["declarative"],
                optimizers=["sgd", "adam"],
                losses=["cross_entropy"],
                metrics=metrics or ["loss", "accuracy"],
                max_epochs=10,
                released_outputs=released or ["model", "metrics", "plots", "privacy_report"],
            ),
            "not_before": now - timedelta(days=1),
            "expires": now + timedelta(days=1),
        }
    )


def private_pipeline(privacy: dict[str, Any] | None = None, **train: Any) -> Pipeline:
    """The tiny training pipeline (90 training samples) with a privacy section."""
    doc = classification_pipeline(**train).model_dump(mode="json")
    doc["privacy"] = {"epsilon": 3.0, "delta": 1e-3, "max_grad_norm": 1.0, **(privacy or {})}
    return Pipeline.model_validate(doc)
