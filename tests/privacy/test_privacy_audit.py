"""The one-run audit (Steinke, Nasr & Jagielski 2023): the ε bound, the canaries, two runs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, chisquare

from sealroom.data import ArrayDataset, MemoryTree
from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import Pipeline
from sealroom.privacy.audit import (
    CanaryRun,
    CanarySet,
    audit_scores,
    audit_scores_best,
    draw_inclusion,
    epsilon_lower_bound,
    guesses,
    mislabeled_canaries,
    noise_canaries,
    p_value,
    run_canary_audit,
    with_canaries,
)
from sealroom.privacy.noise import NoiseSource, SeededRandom
from sealroom.train.models import build_model
from tests.train.tiny import blob_images


def _paper_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The paper's loop, transcribed as printed (reference for the vectorised version)."""
    q = 1 / (1 + math.exp(-eps))
    beta = binom.sf(v - 1, r, q)
    alpha = 0.0
    total = 0.0
    for i in range(1, v + 1):
        total = total + binom.pmf(v - i, r, q)
        if total > i * alpha:
            alpha = total / i
    return min(beta + alpha * delta * 2 * m, 1.0)


def test_p_value_by_hand() -> None:
    # ε = 0: P[Bin(4, 1/2) >= 3] = 5/16; α = max(6/16, 10/16 / 2, 11/16 / 3) = 6/16
    assert p_value(4, 4, 3, 0.0, 0.0) == pytest.approx(5 / 16)
    assert p_value(4, 4, 3, 0.0, 0.01) == pytest.approx(5 / 16 + 6 / 16 * 0.01 * 2 * 4)


@pytest.mark.parametrize(
    ("m", "r", "v", "eps", "delta"),
    [
        (100, 40, 30, 0.5, 1e-5),
        (1000, 200, 150, 1.3, 1e-3),
        (50, 50, 50, 3.0, 1e-2),
        (9, 3, 0, 1.0, 0.1),
    ],
)
def test_p_value_matches_the_papers_loop(m: int, r: int, v: int, eps: float, delta: float) -> None:
    assert p_value(m, r, v, eps, delta) == pytest.approx(
        _paper_p_value(m, r, v, eps, delta), rel=1e-9
    )


def test_all_correct_gives_the_log_odds_bound() -> None:
    # δ = 0, v = r: p = q^r <= β  <=>  ε <= log(β^(1/r) / (1 - β^(1/r)))
    for r in (5, 10, 40):
        q = 0.05 ** (1 / r)
        expected = math.log(q / (1 - q))
        assert epsilon_lower_bound(r, r, r, 0.0, 0.95) == pytest.approx(expected, abs=1e-6)
        # δ only adds to the p-value, so the bound can only fall
        assert epsilon_lower_bound(1000, r, r, 1e-5, 0.95) <= expected + 1e-9
    assert epsilon_lower_bound(10, 10, 10, 0.0, 0.95) == pytest.approx(1.0518, abs=1e-3)


def test_bound_grows_with_correct_guesses_and_is_zero_at_chance() -> None:
    bounds = [epsilon_lower_bound(1000, 200, v, 1e-5) for v in range(90, 201, 10)]
    assert bounds[:2] == [0.0, 0.0]  # 45 % and 50 % correct: nothing to reject
    assert all(b2 >= b1 for b1, b2 in itertools.pairwise(bounds))
    assert bounds[-1] > bounds[-3] > bounds[4] > 0
    assert epsilon_lower_bound(1000, 200, 100, 0.0) == 0.0


def test_higher_confidence_gives_a_lower_bound() -> None:
    assert epsilon_lower_bound(500, 100, 80, 1e-5, 0.99) < epsilon_lower_bound(
        500, 100, 80, 1e-5, 0.9
    )


def test_bad_counts_are_refused() -> None:
    with pytest.raises(PrivacyError, match="correct <= guesses <= canaries"):
        epsilon_lower_bound(10, 20, 5, 1e-5)
    with pytest.raises(PrivacyError, match="confidence"):
        epsilon_lower_bound(10, 10, 5, 1e-5, confidence=1.0)


def test_guesses_take_the_top_and_bottom_scores() -> None:
    scores = np.array([0.3, 2.0, -1.0, 0.5, 1.5, -3.0])
    assert guesses(scores, 2, 1).tolist() == [0, 1, 0, 0, 1, -1]
    assert guesses(scores, 0, 3).tolist() == [-1, 0, -1, 0, 0, -1]
    with pytest.raises(PrivacyError, match="k\\+ \\+ k- <= m"):
        guesses(scores, 4, 3)
    with pytest.raises(PrivacyError, match="finite"):
        guesses(np.array([0.0, np.nan]), 1, 0)


def test_audit_counts_correct_guesses() -> None:
    included = np.array([True, True, False, True, False, False, True, False])
    scores = np.array([5.0, 4.0, 3.0, -1.0, 1.0, 0.0, 2.0, -2.0])
    # top 3: indices 0, 1, 2 (IN, IN, OUT); bottom 2: indices 7, 3 (OUT, IN)
    result = audit_scores(scores, included, k_plus=3, k_minus=2, delta=0.0)
    assert (result.guesses, result.correct, result.included) == (5, 3, 4)
    assert result.epsilon_lower_bound == epsilon_lower_bound(8, 5, 3, 0.0)


def test_bonferroni_best_is_no_higher_than_the_same_choice_at_full_confidence() -> None:
    rng = np.random.default_rng(0)
    included = draw_inclusion(400, 1)
    scores = rng.normal(size=400) + 1.5 * included
    ks = [(10, 10), (25, 25), (50, 50)]
    best = audit_scores_best(scores, included, ks, delta=1e-5)
    single = [audit_scores(scores, included, k_plus=a, k_minus=b, delta=1e-5) for a, b in ks]
    assert best.confidence == 0.95
    assert 0 < best.epsilon_lower_bound <= max(s.epsilon_lower_bound for s in single)


def test_inclusion_is_independent_fair_coins() -> None:
    s = draw_inclusion(40_000, 7)
    assert s.dtype == bool
    assert abs(s.mean() - 0.5) < 4 * 0.5 / math.sqrt(len(s))
    pairs = (2 * s[:-1:2].astype(int) + s[1::2]).astype(int)  # disjoint consecutive pairs
    assert chisquare(np.bincount(pairs, minlength=4)).pvalue > 1e-4
    assert abs(np.corrcoef(s[:-1], s[1:])[0, 1]) < 4 / math.sqrt(len(s))
    assert (draw_inclusion(1000, 7) == s[:1000]).all()  # the auditor can redraw it
    assert (draw_inclusion(1000, 8) != s[:1000]).any()


def test_mislabeled_canaries_never_keep_their_label() -> None:
    images, labels = blob_images(300, seed=4)
    pool = ArrayDataset(images[:, None].astype(np.float32) / 255, labels.astype(np.int64))
    canaries = mislabeled_canaries(pool, 200, 3, seed=0)
    original = {tuple(x.ravel()): y for x, y in zip(pool.x, pool.y, strict=True)}
    assert all(original[tuple(x.ravel())] != y for x, y in zip(canaries.x, canaries.y, strict=True))
    train = ArrayDataset(pool.x[:10], pool.y[:10])
    assert len(with_canaries(train, canaries)) == 10 + int(canaries.included.sum())
    with pytest.raises(PrivacyError, match="pool holds 300"):
        mislabeled_canaries(pool, 301, 3, seed=0)


def test_noise_canaries_are_seeded_out_of_distribution_records() -> None:
    canaries = noise_canaries(500, (1, 8, 8), 10, seed=3)
    again = noise_canaries(500, (1, 8, 8), 10, seed=3)
    assert (canaries.x == again.x).all() and (canaries.included == again.included).all()
    assert canaries.x.shape == (500, 1, 8, 8) and canaries.x.dtype == np.float32
    assert canaries.x.min() >= 0 and canaries.x.max() < 1
    assert set(canaries.y.tolist()) == set(range(10))
    assert 150 < canaries.included.sum() < 350


# --------------------------------------------------------------------------- two real runs


def _mlp_pipeline(privacy: dict[str, object] | None, epochs: int) -> Pipeline:
    doc: dict[str, object] = {
        "name": "audit-tiny",
        "datasets": [{"id": "blobs", "source": {"format": "idx", "images": "x", "labels": "y"}}],
        "model": {
            "model": {
                "format": "declarative",
                "layers": [
                    {"type": "flatten"},
                    {"type": "linear", "params": {"in_features": 64, "out_features": 256}},
                    {"type": "tanh"},
                    {"type": "linear", "params": {"in_features": 256, "out_features": 3}},
                ],
            },
            "input_shape": [1, 8, 8],
        },
        "loss": {"components": {"ce": {"name": "cross_entropy"}}, "expression": "ce"},
        "train": {
            "optimizer": {"name": "adam", "params": {"lr": 0.01}},
            "epochs": epochs,
            "batch_size": 32,
            "seed": 0,
            "device": "cpu",
        },
        "eval": {"metrics": ["loss"], "plots": False},
        "privacy": privacy,
    }
    return Pipeline.model_validate(doc)


def _tiny_data() -> tuple[ArrayDataset, CanarySet]:
    """150 easy blob images to train on; 200 canaries: bright noise images, random labels."""
    images, labels = blob_images(150, seed=0)
    train = ArrayDataset(images[:, None].astype(np.float32) / 255, labels.astype(np.int64))
    rng = np.random.default_rng(5)
    pool = ArrayDataset(
        3 * rng.random((200, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 200).astype(np.int64)
    )
    return train, mislabeled_canaries(pool, 200, 3, seed=1)


def _tiny_audit(
    privacy: dict[str, object] | None, epochs: int, noise: NoiseSource | None = None
) -> CanaryRun:
    train, canaries = _tiny_data()
    pipeline = _mlp_pipeline(privacy, epochs)
    torch.manual_seed(0)
    model = build_model(pipeline.model, MemoryTree({}))
    return run_canary_audit(
        pipeline, model, train, canaries, ks=[(20, 20)], delta=1e-3, noise=noise or SeededRandom(0)
    )


def test_a_non_private_run_that_memorises_canaries_is_caught() -> None:
    run = _tiny_audit(None, 40)
    assert run.epsilon is None
    assert (
        run.audit.epsilon_lower_bound > 0.8
    )  # 37 of 40 guesses right: ε > 1.2 at 95 %; the cap for 40 of 40 is 2.55


@pytest.mark.parametrize("mode", ["fused", "hooks"])
def test_a_dp_run_bound_stays_below_its_epsilon(mode: str) -> None:
    # rdp: the PRV calibration would take seconds more
    privacy = {"epsilon": 1.0, "delta": 1e-3, "grad_sample_mode": mode, "accountant": "rdp"}
    run = _tiny_audit(privacy, 40)
    assert run.epsilon is not None and run.epsilon <= 1.0
    assert run.audit.epsilon_lower_bound <= run.epsilon


class _NoNoise:
    """A broken noise source: Poisson sampling as usual, Gaussian noise of zero."""

    description = "broken: no noise"

    def __init__(self) -> None:
        self._sampling = SeededRandom(0)

    def normal(self, count: int, std: float) -> torch.Tensor:
        return torch.zeros(count)

    def bernoulli_mask(self, count: int, p: float) -> torch.Tensor:
        return self._sampling.bernoulli_mask(count, p)


def test_the_audit_catches_a_dp_run_without_noise() -> None:
    privacy = {"epsilon": 0.5, "delta": 1e-3, "grad_sample_mode": "fused", "accountant": "rdp"}
    run = _tiny_audit(privacy, 40, noise=_NoNoise())
    assert run.epsilon is not None and run.epsilon <= 0.5  # what the accountant claims
    assert run.audit.epsilon_lower_bound > run.epsilon + 0.3  # what the run leaks
