"""Output policy: label, top-k or rounded probabilities; never the raw logits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sealroom.contract.inference import OutputPolicy
from sealroom.serve.engine import EngineFailure
from sealroom.serve.output_policy import apply_output_policy, softmax

LOGITS = np.array([[1.0, 3.0, 2.0, 0.5], [10.0, -1.0, 10.0, 9.99]], dtype=np.float32)


def test_label_gives_the_arg_max_only() -> None:
    assert apply_output_policy(OutputPolicy(kind="label"), LOGITS) == [{"label": 1}, {"label": 0}]


def test_top_k_gives_k_classes_with_rounded_softmax_scores_ties_by_lower_class() -> None:
    out = apply_output_policy(OutputPolicy(kind="top_k", k=2, decimals=3), LOGITS)
    probs = softmax(LOGITS)
    assert out[0] == {
        "top_k": [[1, round(float(probs[0, 1]), 3)], [2, round(float(probs[0, 2]), 3)]]
    }
    assert [c for c, _ in out[1]["top_k"]] == [0, 2]


def test_k_beyond_the_classes_gives_every_class() -> None:
    out = apply_output_policy(OutputPolicy(kind="top_k", k=10), LOGITS)
    assert len(out[0]["top_k"]) == 4


def test_probabilities_are_rounded_and_never_the_logits() -> None:
    out = apply_output_policy(OutputPolicy(kind="probabilities", decimals=2), LOGITS)
    for row, logits in zip(out, LOGITS, strict=True):
        values = row["probabilities"]
        assert all(v == round(v, 2) for v in values)
        assert abs(sum(values) - 1.0) < 0.03
        assert not set(values) & {float(v) for v in logits}
    json.dumps(out)  # JSON-able


def test_softmax_is_stable_for_large_logits() -> None:
    probs = softmax(np.array([[1000.0, 1000.0]]))
    np.testing.assert_allclose(probs, [[0.5, 0.5]])


def test_non_finite_logits_are_refused() -> None:
    with pytest.raises(EngineFailure, match="non-finite"):
        apply_output_policy(OutputPolicy(), np.array([[np.nan, 1.0]]))
