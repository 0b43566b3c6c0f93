"""What a client learns from the logits: the contract's output policy, never the logits.

Less output makes a model harder to extract (Tramèr et al., 2016): ``label`` gives the
arg-max only, ``top_k`` the k best classes with rounded softmax scores, ``probabilities``
every rounded score. Scores are computed in float64 and rounded, so the low bits of the
logits (which leak weights to a patient attacker) never leave the room.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sealroom.contract.inference import OutputPolicy
from sealroom.serve.engine import EngineFailure


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row maximum for stability."""
    values = np.asarray(logits, dtype=np.float64)
    shifted = values - values.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    return exps / exps.sum(axis=1, keepdims=True)


def apply_output_policy(policy: OutputPolicy, logits: np.ndarray) -> list[dict[str, Any]]:
    """One JSON-able dict per row of ``logits`` (batch, classes), as the policy allows."""
    if logits.ndim != 2 or logits.shape[1] < 1:
        raise EngineFailure("the model returned logits of an unexpected shape")
    if not np.all(np.isfinite(logits)):
        raise EngineFailure("the model returned non-finite logits")
    labels = np.argmax(logits, axis=1)
    if policy.kind == "label":
        return [{"label": int(label)} for label in labels]
    scores = softmax(logits)
    if policy.kind == "probabilities":
        return [
            {"probabilities": [round(float(p), policy.decimals) for p in row]} for row in scores
        ]
    k = min(policy.k, logits.shape[1])
    results: list[dict[str, Any]] = []
    for row in scores:
        # stable sort on the negated score: ties keep the lower class first
        best = np.argsort(-row, kind="stable")[:k]
        results.append({"top_k": [[int(c), round(float(row[c]), policy.decimals)] for c in best]})
    return results
