"""The attack task: ART FGM/PGD on a source model, the adversarial set format, scoring."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from sealroom.errors import LabError
from sealroom.lab.tasks.attacks import (
    SET_FORMAT,
    attack_task,
    check_grid,
    craft,
    predict,
    read_set,
    subset,
    success_rate,
)
from sealroom.lab.tasks.registry import InputFile, TaskContext
from sealroom.lab.tasks.robustness import evaluate_attack, read_results, score
from sealroom.train.onnx_check import ModelError
from tests.lab.lab_attack_models import halves, onnx_bytes, trained

X, Y = halves(48, seed=1)


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    xt, yt = halves(200, seed=0)
    return {"linear": trained("linear", 0, xt, yt), "mlp": trained("mlp", 1, xt, yt)}


@pytest.fixture(scope="module")
def crafted(models: dict[str, torch.nn.Module]):  # type: ignore[no-untyped-def]
    return craft(models["mlp"], X, Y, ["fgm", "pgd"], [0.02, 0.15], source="mlp", pgd_steps=5)


def ctx(tmp: Path, seed: int = 0) -> TaskContext:
    return TaskContext(job_id="job-1", attempt=1, seed=seed, workdir=tmp)


def test_lab_attacks_stay_in_the_eps_ball_and_the_pixel_range(crafted) -> None:  # type: ignore[no-untyped-def]
    for m, method in enumerate(crafted.methods):
        for e, eps in enumerate(crafted.eps):
            adv = crafted.x_adv[m, e]
            assert np.abs(adv - X).max() <= eps + 1e-6, (method, eps)
            assert adv.min() >= 0.0 and adv.max() <= 1.0
            assert np.abs(adv - X).max() > eps / 2  # it moved: an attack, not a copy


def test_lab_attacks_fool_the_source_model_more_as_eps_grows(models, crafted) -> None:  # type: ignore[no-untyped-def]
    model = models["mlp"]
    clean = predict(model, X)
    assert np.mean(clean == Y) > 0.85
    for method in ("fgm", "pgd"):
        small = success_rate(Y, clean, predict(model, crafted.adversarial(method, 0.02)))
        large = success_rate(Y, clean, predict(model, crafted.adversarial(method, 0.15)))
        assert small is not None and large is not None
        assert large > 0.9 and large > small, (method, small, large)
    # PGD (5 steps from the clean point) is at least as strong as one FGM step here
    pgd = success_rate(Y, clean, predict(model, crafted.adversarial("pgd", 0.02)))
    fgm = success_rate(Y, clean, predict(model, crafted.adversarial("fgm", 0.02)))
    assert pgd is not None and fgm is not None and pgd >= fgm


def test_lab_attacks_are_deterministic(models, crafted) -> None:  # type: ignore[no-untyped-def]
    again = craft(models["mlp"], X, Y, ["fgm", "pgd"], [0.02, 0.15], source="mlp", pgd_steps=5)
    assert np.array_equal(again.x_adv, crafted.x_adv)


def test_lab_attacks_success_rate_counts_only_clean_correct_examples() -> None:
    y = np.array([0, 1, 1, 0])
    clean = np.array([0, 1, 0, 1])  # two correct (rows 0, 1)
    adv = np.array([1, 1, 1, 0])  # row 0 flipped, row 1 held; rows 2-3 do not count
    assert success_rate(y, clean, adv) == 0.5
    assert success_rate(y, np.array([1, 0, 0, 1]), adv) is None


def test_lab_attacks_set_round_trips_without_pickle(crafted) -> None:  # type: ignore[no-untyped-def]
    data = crafted.to_npz()
    back = read_set(data, "set")
    assert back.source == "mlp" and back.methods == ("fgm", "pgd") and back.eps == (0.02, 0.15)
    assert np.array_equal(back.x_adv, crafted.x_adv) and np.array_equal(back.y, Y)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert str(npz["format"]) == SET_FORMAT


def _npz(**arrays: object) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def test_lab_attacks_set_reader_refuses_bad_files(crafted) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LabError, match="not an npz"):
        read_set(b"not a zip", "a.npz")
    base = {
        "format": np.array(SET_FORMAT), "source": np.array("m"), "x": X, "y": Y,
        "methods": np.array(["fgm"]), "eps": np.array([0.1]), "x_adv": X[None, None],
    }  # fmt: skip
    read_set(_npz(**base), "ok.npz")
    with pytest.raises(LabError, match=r"a\.npz: x_adv has shape"):
        read_set(_npz(**{**base, "x_adv": X[None, None, :10]}), "a.npz")
    with pytest.raises(LabError, match="unknown attack method"):
        read_set(_npz(**{**base, "methods": np.array(["cw"])}), "a.npz")
    with pytest.raises(LabError, match="lacks y"):
        read_set(_npz(**{k: v for k, v in base.items() if k != "y"}), "a.npz")
    objects = np.array([{"a": 1}], dtype=object)  # a pickled object array is never loaded
    with pytest.raises(LabError, match="not an npz adversarial set"):
        read_set(_npz(**{**base, "source": objects}), "a.npz")


def test_lab_attacks_grid_refusals() -> None:
    with pytest.raises(LabError, match="unknown attack method 'cw'"):
        check_grid(["cw"], [0.1], "attack")
    with pytest.raises(LabError, match=r"eps must be"):
        check_grid(["fgm"], [0.0], "attack")
    with pytest.raises(LabError, match="repeat"):
        check_grid(["fgm", "fgm"], [0.1], "attack")


def test_lab_attacks_subset_is_fixed_by_its_seed() -> None:
    a = subset(X, Y, 10, seed=3)
    b = subset(X, Y, 10, seed=3)
    c = subset(X, Y, 10, seed=4)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    assert len(subset(X, Y, 0, seed=3)[1]) == len(Y)


def test_lab_attacks_task_on_an_onnx_source(models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(onnx_bytes(models["mlp"]))
    data_file = tmp_path / "data.npz"
    data_file.write_bytes(_npz(x_test=X, y_test=Y))
    context = ctx(tmp_path)
    out = attack_task(
        context,
        model=InputFile("model", "onnx", model_file),
        data=InputFile("data", "npz", data_file),
        methods=["pgd"],
        eps=[0.15],
        limit=20,
        pgd_steps=3,
        source="mlp",
    )
    blob = out["adversarial"]
    assert blob.kind == "npz" and blob.filename == "adversarial-mlp.npz"
    adv = read_set(blob.data, "blob")
    assert adv.x.shape == (20, 1, 8, 8) and adv.methods == ("pgd",)
    names = {m.name: m.value for m in context.metrics}
    assert names["attack_success_rate.pgd.eps_0.15"] > 0.8
    assert names["clean_accuracy"] > 0.8


def test_lab_attacks_task_refuses_an_onnx_with_external_data(tmp_path: Path) -> None:
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[64, 2])
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../secret.key")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
        [weight],
    )
    path = tmp_path / "evil.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ModelError, match=r"attack\.model"):
        attack_task(ctx(tmp_path), model=InputFile("m", "onnx", path), data=(X, Y), eps=[0.1])


def test_lab_attacks_task_refuses_a_source_name_that_is_a_path(models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LabError, match=r"attack\.source"):
        attack_task(ctx(tmp_path), model=models["mlp"], data=(X, Y), source="../x")


def test_lab_attacks_evaluate_scores_white_box_and_transfer(
    models, crafted, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    white = score(crafted, "mlp", models["mlp"])
    cell = next(r for r in white if r.method == "pgd" and r.eps == 0.15)
    assert cell.attack_success_rate is not None and cell.attack_success_rate > 0.9
    assert cell.robust_accuracy < 0.1 and cell.clean_accuracy > 0.85
    set_file = tmp_path / "adv.npz"
    set_file.write_bytes(crafted.to_npz())
    context = ctx(tmp_path)
    out = evaluate_attack(
        context,
        adversarial=InputFile("adversarial", "npz", set_file),
        targets={"mlp": models["mlp"], "linear": models["linear"]},
    )
    rows = read_results(out["results"].data, "results")
    assert {(r.source, r.target) for r in rows} == {("mlp", "mlp"), ("mlp", "linear")}
    assert len(rows) == 2 * 2 * 2
    again = {(r.target, r.method, r.eps): r for r in rows}
    assert again[("mlp", "pgd", 0.15)] == cell
    doc = json.loads(out["results"].data)
    assert doc["source"] == "mlp"
    with pytest.raises(LabError, match="malformed robustness results"):
        read_results(b'{"format": "sealroom.robustness/1", "rows": [{"x": 1}]}', "r.json")
