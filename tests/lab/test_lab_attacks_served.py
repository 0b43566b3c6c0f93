"""attack_served against a real serving room on loopback (tests/serve helpers): transfer
examples from a surrogate go through the attested, receipt-checked client; the query
budget stops the run cleanly and the queries used are recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sealroom.crypto.identity import create_party
from sealroom.lab.tasks.attacks import AdversarialSet, craft, predict, success_rate
from sealroom.lab.tasks.attacks_served import attack_served, query_sealed
from sealroom.lab.tasks.registry import InputFile, TaskContext
from tests.lab.lab_attack_models import halves, onnx_bytes, trained
from tests.serve.helpers import build, module_workspace, running_room

INPUT = {"name": "input", "dtype": "float32", "shape": [1, 8, 8]}
X, Y = halves(12, seed=5)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    xt, yt = halves(200, seed=0)
    sealed = trained("linear", 3, xt, yt)  # the model nobody may see
    surrogate = trained("mlp", 4, *halves(200, seed=9))  # the lab's own stand-in
    adv = craft(surrogate, X, Y, ["fgm", "pgd"], [0.15], source="surrogate", pgd_steps=3)
    tmp = tmp_path_factory.mktemp("served")
    with module_workspace(tmp) as ws:
        alice = create_party(ws, "alice", "consumer")
        served = build(
            ws,
            tmp,
            client_public=alice.identity.signing_key,
            onnx=onnx_bytes(sealed),
            input=INPUT,
            output={"kind": "label"},
            query_budget=30,
        )
        with running_room(served) as (url, _):
            yield {"ws": ws, "served": served, "url": url, "adv": adv, "sealed": sealed}


@pytest.mark.slow  # a real sandboxed serving room starts: ~30 s on 2 shared cores
def test_lab_attacks_served_budget_stops_the_run_cleanly(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    adv: AdversarialSet = setup["adv"]
    path = tmp_path / "adv.npz"
    path.write_bytes(adv.to_npz())
    ctx = TaskContext(job_id="job-9", attempt=1, seed=0, workdir=tmp_path)
    out = attack_served(
        ctx,
        adversarial=InputFile("adversarial", "npz", path),
        url=setup["url"],
        workspace=str(setup["ws"].home),
        contract=setup["served"].signed.id,
        as_party="alice",
        trust_local_attester=True,
        batch_size=4,
    )
    doc = json.loads(out["served"].data)
    # 12 examples x (clean + fgm + pgd) = 36 > budget 30: two batches of 4 (24 examples
    # charged) complete, the third stops after its clean batch (28), pgd is refused.
    assert doc["budget_exhausted"] is True
    assert doc["queries_used"] == 28 and doc["examples_evaluated"] == 8
    assert "query budget spent" in doc["stopped"]
    # what the sealed model answered is what it computes on those very examples
    sealed = setup["sealed"]
    y = adv.y[:8]
    clean = predict(sealed, adv.x[:8])
    assert doc["clean_accuracy"] == pytest.approx(float(np.mean(clean == y)))
    for row in doc["rows"]:
        labels = predict(sealed, adv.adversarial(row["method"], row["eps"])[:8])
        assert row["robust_accuracy"] == pytest.approx(float(np.mean(labels == y)))
        assert row["attack_success_rate"] == success_rate(y, clean, labels)
    metrics = {m.name: m.value for m in ctx.metrics}
    assert metrics["queries_used"] == 28 and metrics["budget_exhausted"] == 1.0
    # the budget is spent for good: another run gets nothing and says so
    again = query_sealed(_client(setup), adv, batch_size=4)
    assert again.budget_exhausted and again.queries_used == 0 and again.examples_evaluated == 0


def _client(setup: dict[str, Any]) -> Any:
    from sealroom.attest.software import attestation_key
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.signing import SigningKey
    from sealroom.serve.client import InferenceClient

    ws, served = setup["ws"], setup["served"]
    party = load_party(ws, "alice")
    return InferenceClient(
        setup["url"],
        served.signed,
        trusted_attesters={attestation_key(ws).public_b64},
        identity=("alice", SigningKey(party._signing)),
    )


class FakeRoom:
    """A client stand-in that labels with a local model and refuses like a room whose
    budget is spent (the fast test of the stop rule; the slow one uses a real room)."""

    def __init__(self, model: Any, budget: int, refusal: str = "query budget spent") -> None:
        from types import SimpleNamespace

        terms = SimpleNamespace(
            input=SimpleNamespace(shape=[64], dtype="float32"),
            limits=SimpleNamespace(max_batch_size=5),
        )
        self.signed = SimpleNamespace(contract=SimpleNamespace(inference=terms))
        self.model, self.budget, self.used, self.refusal = model, budget, 0, refusal
        self.shapes: list[tuple[int, ...]] = []

    def infer(self, array: np.ndarray) -> Any:
        from types import SimpleNamespace

        from sealroom.serve.client import ClientError

        if self.used + len(array) > self.budget:
            raise ClientError(f"room refused /v1/infer (429): {self.refusal}: ...")
        self.used += len(array)
        self.shapes.append(array.shape)
        labels = predict(self.model, array.reshape(len(array), 1, 8, 8))
        return SimpleNamespace(
            outputs=[{"probabilities": [float(c == 0), float(c == 1)]} for c in labels]
        )


def _local_set() -> tuple[Any, AdversarialSet]:
    model = trained("linear", 3, *halves(200, seed=0))
    return model, craft(model, X, Y, ["fgm"], [0.05, 0.15], source="s")


def test_lab_attacks_served_stop_rule_and_batching() -> None:
    model, adv = _local_set()
    room = FakeRoom(model, budget=10_000)
    full = query_sealed(room, adv, batch_size=50)  # capped by the contract's batch limit
    assert not full.budget_exhausted and full.examples_evaluated == 12
    assert full.queries_used == 36 and max(s[0] for s in room.shapes) == 5
    assert all(s[1:] == (64,) for s in room.shapes)  # reshaped to the contract's input
    white = {(r["method"], r["eps"]): r for r in full.rows}
    labels = predict(model, adv.adversarial("fgm", 0.15))
    assert white[("fgm", 0.15)]["robust_accuracy"] == pytest.approx(float(np.mean(labels == Y)))
    limited = query_sealed(FakeRoom(model, budget=20), adv, batch_size=4)
    assert limited.budget_exhausted and limited.examples_evaluated == 4
    assert limited.queries_used == 20  # 12 for batch 1, then 8 of batch 2 before the refusal


def test_lab_attacks_served_other_refusals_fail_in_one_line() -> None:
    from sealroom.errors import LabError

    model, adv = _local_set()
    with pytest.raises(LabError, match="attack_served: room refused"):
        query_sealed(FakeRoom(model, budget=0, refusal="contract expired"), adv)
