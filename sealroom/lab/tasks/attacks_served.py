"""Robustness of a model nobody may see: transfer attacks through its inference API.

A sealed model (served by ``sealroom serve`` under an inference contract) gives its client
labels or rounded scores, never gradients, and only up to the contract's query budget. So
the lab crafts adversarial examples on a SURROGATE it holds (the ``attack`` task on the
surrogate's ONNX artifact) and sends them through :class:`~sealroom.serve.client.
InferenceClient`, which attests the room and checks every receipt. The answers give the
sealed model's clean accuracy, robust accuracy and attack success rate on those examples
(definitions in :mod:`sealroom.lab.tasks.robustness`).

Queries are spent example-major: for each batch of examples, first the clean batch, then
each (method, ε) version of it, so every configuration covers the same examples. When the
room refuses because the budget is spent (HTTP 429, "query budget spent"), the task stops,
drops the incomplete batch from the statistics, and records the examples charged so far and
why it stopped; it never retries around the budget.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.tasks.attacks import AdversarialSet, eps_label, read_set, success_rate
from sealroom.lab.tasks.registry import TaskContext, task
from sealroom.lab.tasks.values import input_bytes

SERVED_FORMAT = "sealroom.served-robustness/1"
BUDGET_REFUSAL = "query budget spent"


@dataclass
class ServedResult:
    """What the sealed model answered, and what it cost."""

    source: str
    examples_evaluated: int = 0
    queries_used: int = 0  # examples in answered requests (what the room charged)
    budget_exhausted: bool = False
    stopped: str = "all examples sent"
    clean_accuracy: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


def label_of(output: Any) -> int:
    """The predicted class in one output the contract's policy released."""
    if isinstance(output, dict):
        if "label" in output:
            return int(output["label"])
        if "probabilities" in output:
            return int(np.argmax(np.asarray(output["probabilities"], dtype=np.float64)))
        if output.get("top_k"):
            return int(output["top_k"][0][0])
    raise LabError("attack_served: the room's output holds no label, scores or top-k")


def _shaped(batch: np.ndarray, shape: list[int], dtype: str) -> np.ndarray:
    size = int(np.prod(shape))
    if int(np.prod(batch.shape[1:])) != size:
        raise LabError(
            f"attack_served: examples of shape {list(batch.shape[1:])} do not fit the "
            f"contract's input shape {shape}"
        )
    return np.ascontiguousarray(batch.reshape(len(batch), *shape).astype(dtype))


def query_sealed(
    client: Any,
    adv: AdversarialSet,
    *,
    configs: list[tuple[str, float]] | None = None,
    batch_size: int = 8,
    max_examples: int = 0,
    log: Any = None,
) -> ServedResult:
    """Send the set through ``client`` (an attested InferenceClient) until done or the
    budget is spent; see the module docstring."""
    from sealroom.serve.client import ClientError

    terms = client.signed.contract.inference
    shape, dtype = list(terms.input.shape), terms.input.dtype
    batch_size = max(1, min(int(batch_size), int(terms.limits.max_batch_size)))
    configs = configs or [(m, e) for m in adv.methods for e in adv.eps]
    n = len(adv.y) if max_examples <= 0 else min(len(adv.y), int(max_examples))
    result = ServedResult(source=adv.source)
    clean: list[int] = []
    attacked: dict[tuple[str, float], list[int]] = {c: [] for c in configs}
    arrays = [adv.x] + [adv.adversarial(m, e) for m, e in configs]
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        answers: list[list[int]] = []
        try:
            for array in arrays:
                found = client.infer(_shaped(array[start:stop], shape, dtype))
                result.queries_used += stop - start
                answers.append([label_of(o) for o in found.outputs])
        except ClientError as exc:
            if BUDGET_REFUSAL not in str(exc):
                raise LabError(f"attack_served: {exc}") from None
            result.budget_exhausted = True
            result.stopped = f"query budget spent after {result.queries_used} examples"
            break
        clean.extend(answers[0])
        for config, labels in zip(configs, answers[1:], strict=True):
            attacked[config].extend(labels)
        if log is not None:
            log(f"{stop}/{n} examples, {result.queries_used} queries")
    done = len(clean)
    result.examples_evaluated = done
    if done:
        y = adv.y[:done]
        clean_arr = np.asarray(clean)
        result.clean_accuracy = float(np.mean(clean_arr == y))
        for (method, eps), labels in attacked.items():
            adv_arr = np.asarray(labels)
            result.rows.append(
                {
                    "method": method,
                    "eps": eps,
                    "n": done,
                    "robust_accuracy": float(np.mean(adv_arr == y)),
                    "attack_success_rate": success_rate(y, clean_arr, adv_arr),
                }
            )
    return result


def open_client(
    workspace: str, contract: str, url: str, as_party: str | None, trust_local: bool
) -> Any:
    """An InferenceClient as ``sealroom infer`` builds it, from a workspace on this host."""
    from sealroom.attest.software import attestation_key, trusted_attesters
    from sealroom.contract.store import load_contract
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.signing import SigningKey
    from sealroom.serve.client import InferenceClient
    from sealroom.workspace import Workspace

    ws = Workspace.find(Path(workspace))
    signed = load_contract(ws, contract)
    if signed.contract.inference is None:
        raise LabError(f"attack_served.contract: {contract} has no inference terms")
    trusted = trusted_attesters(ws)
    if trust_local:
        trusted.add(attestation_key(ws).public_b64)
    identity = None
    if as_party:
        party = load_party(ws, as_party)
        identity = (as_party, SigningKey(party._signing))
    return InferenceClient(url, signed, trusted_attesters=trusted, identity=identity)


@task(
    "attack_served",
    outputs=("served",),
    description="transfer attack on a sealed model through its inference API (attested, "
    "receipts checked) under its query budget; stops cleanly when the budget is spent",
    args={
        "adversarial": "adversarial set crafted on a surrogate (the attack task's npz)",
        "url": "the serving room's address",
        "workspace": "sealroom workspace home holding the contract (and the client party)",
        "contract": "inference contract id",
        "as_party": "client party name (restricted contracts)",
        "trust_local_attester": "also trust this workspace's own attestation key",
        "methods": "subset of the set's methods (default all)",
        "eps": "subset of the set's eps (default all)",
        "max_examples": "examples sent at most (0 = the whole set)",
        "batch_size": "examples per request (capped by the contract)",
    },
)
def attack_served(
    ctx: TaskContext,
    adversarial: Any,
    url: str,
    workspace: str,
    contract: str,
    as_party: str = "",
    trust_local_attester: bool = False,
    methods: list[str] | None = None,
    eps: list[float] | None = None,
    max_examples: int = 0,
    batch_size: int = 8,
) -> dict[str, Any]:
    adv = read_set(input_bytes(adversarial, "npz", "attack_served.adversarial"), "adversarial set")
    chosen_methods = list(methods or adv.methods)
    chosen_eps = [float(e) for e in (eps or adv.eps)]
    for method in chosen_methods:
        if method not in adv.methods:
            raise LabError(f"attack_served.methods: {method[:40]!r} is not in the set")
    for value in chosen_eps:
        if value not in adv.eps:
            raise LabError(f"attack_served.eps: {value} is not in the set")
    configs = [(m, e) for m in chosen_methods for e in chosen_eps]
    with open_client(workspace, contract, url, as_party or None, trust_local_attester) as client:
        client.attest()
        result = query_sealed(
            client,
            adv,
            configs=configs,
            batch_size=batch_size,
            max_examples=max_examples,
            log=ctx.log,
        )
    ctx.metric("queries_used", result.queries_used)
    ctx.metric("budget_exhausted", 1.0 if result.budget_exhausted else 0.0)
    ctx.metric("examples_evaluated", result.examples_evaluated)
    if result.clean_accuracy is not None:
        ctx.metric("clean_accuracy", result.clean_accuracy)
    for row in result.rows:
        label = f"{row['method']}.eps_{eps_label(row['eps'])}"
        ctx.metric(f"robust_accuracy.{label}", row["robust_accuracy"])
        if row["attack_success_rate"] is not None:
            ctx.metric(f"attack_success_rate.{label}", row["attack_success_rate"])
    ctx.log(f"sealed model {contract}: {result.stopped}")
    doc = {"format": SERVED_FORMAT, "contract": contract, **asdict(result)}
    data = json.dumps(doc, indent=1, sort_keys=True).encode()
    return {"served": ArtifactBlob("served", "json", "served-robustness.json", data)}
