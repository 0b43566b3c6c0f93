"""`sealroom package card|show` and `pipeline compose --package`: one line and exit 1 on
every refusal, nothing half-written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from click.testing import Result
from typer.testing import CliRunner

from sealroom.crypto.identity import Party, create_party
from sealroom.pipeline.card_signing import load_signed_card, save_card, sign_card
from sealroom.workspace import Workspace
from tests.data.card_factories import (
    IMAGES,
    LABELS,
    T10K_IMAGES,
    T10K_LABELS,
    draft,
    seal_digits,
    write_digits,
    write_draft,
)

runner = CliRunner()
MNIST = Path(__file__).resolve().parents[2] / "scenarios" / "mnist"


def _cli(*args: str) -> Result:
    from sealroom.cli.main import app

    return runner.invoke(app, list(args))


def _one_error(output: str, needle: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in " ".join(output.split()), output


def _provider(ws: Workspace, tmp_path: Path, t10k: int = 0) -> tuple[Party, Path, Path]:
    hospital = create_party(ws, "hospital", "provider")
    folder = write_digits(tmp_path / "data", n=30, t10k=t10k)
    return hospital, folder, seal_digits(folder, hospital, ws.packages / "mnist.sealed").path


def _card(folder: Path, package: Path, draft_path: Path) -> Result:
    return _cli(
        "package", "card", str(folder), "--package", str(package),
        "--draft", str(draft_path), "--as", "hospital",
    )  # fmt: skip


def test_card_then_show_prints_files_sources_splits_and_mock(
    workspace: Workspace, tmp_path: Path
) -> None:
    _, folder, package = _provider(workspace, tmp_path)
    done = _card(folder, package, write_draft(tmp_path / "card.yaml"))
    assert done.exit_code == 0, done.output
    shown = _cli("package", "show", str(package))
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "package mnist.sealed  owner hospital (manifest signature verified)" in lines
    assert any(line.startswith(f"  {IMAGES}  ") and line.endswith("images") for line in lines)
    assert "    30 records; features [1, 28, 28] float32 in [0, 1]" in lines
    assert "    target class scalar int64; 10 classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in lines
    assert "declared splits: none (the pipeline's split section decides)" in lines
    assert "mock data: offered (seed 3, 64 records per source)" in lines
    as_json = json.loads(_cli("package", "show", str(package), "--json").stdout)
    assert as_json["owner"] == "hospital" and as_json["card"]["sources"][0]["records"] == 30
    assert as_json["card_digest"] == load_signed_card(package).digest
    assert [f["path"] for f in as_json["files"]] == [IMAGES, LABELS]


def test_show_without_a_card_lists_the_manifests_files(
    workspace: Workspace, tmp_path: Path
) -> None:
    _, _, package = _provider(workspace, tmp_path)
    shown = _cli("package", "show", str(package))
    assert shown.exit_code == 0, shown.output
    assert "card    none" in shown.output
    assert LABELS in shown.output
    assert json.loads(_cli("package", "show", str(package), "--json").stdout)["card"] is None


def test_a_draft_naming_a_missing_file_writes_no_card(workspace: Workspace, tmp_path: Path) -> None:
    _, folder, package = _provider(workspace, tmp_path)
    source = {"format": "idx", "images": "t10k-images-idx3-ubyte", "labels": LABELS}
    bad = write_draft(tmp_path / "card.yaml", sources=[{**draft()["sources"][0], "source": source}])
    done = _card(folder, package, bad)
    assert done.exit_code == 1
    _one_error(done.output, "no file 't10k-images-idx3-ubyte' in the package; it holds")
    assert not (package / "card.json").exists()
    assert not [p for p in package.iterdir() if p.name.startswith(".card.json")]


def test_only_the_packages_owner_signs_its_card(workspace: Workspace, tmp_path: Path) -> None:
    _, folder, package = _provider(workspace, tmp_path)
    create_party(workspace, "clinic", "provider")
    done = _cli("package", "card", str(folder), "--package", str(package),
                "--draft", str(write_draft(tmp_path / "card.yaml")), "--as", "clinic")  # fmt: skip
    assert done.exit_code == 1
    _one_error(done.output, "package mnist.sealed belongs to hospital; only hospital can sign")
    assert not (package / "card.json").exists()


def test_show_refuses_a_card_another_party_signed(workspace: Workspace, tmp_path: Path) -> None:
    _, folder, package = _provider(workspace, tmp_path)
    assert _card(folder, package, write_draft(tmp_path / "card.yaml")).exit_code == 0
    clinic = create_party(workspace, "clinic", "provider")
    save_card(package, sign_card(load_signed_card(package).card, clinic))
    shown = _cli("package", "show", str(package))
    assert shown.exit_code == 1
    _one_error(shown.output, "signed by 'clinic', not by the package's owner 'hospital'")


def test_the_provider_declares_t10k_as_test_and_the_card_says_so(
    workspace: Workspace, tmp_path: Path
) -> None:
    _, folder, package = _provider(workspace, tmp_path, t10k=12)
    declaration = {
        "dataset": "mnist",
        "train": {"source": {"format": "idx", "images": IMAGES, "labels": LABELS}},
        "test": {"source": {"format": "idx", "images": T10K_IMAGES, "labels": T10K_LABELS}},
        "val": {"fraction": 0.1},
        "min_size": 10,
    }
    (tmp_path / "declaration.yaml").write_text(yaml.safe_dump(declaration))
    out = tmp_path / "mnist.decl.json"
    declared = _cli("dataset", "declare", str(tmp_path / "declaration.yaml"), "--as", "hospital",
                    "--out", str(out))  # fmt: skip
    assert declared.exit_code == 0, declared.output
    stats = [{"name": "label_counts", "source": "train", "epsilon": 0.5}]
    spec = write_draft(tmp_path / "card.yaml", declaration=out.name, statistics=stats)
    done = _card(folder, package, spec)
    assert done.exit_code == 0, done.output
    shown = _cli("package", "show", str(package)).output
    assert (
        f"declared splits: dataset mnist: train {IMAGES}; val 0.1 of train; test file "
        f"{T10K_IMAGES}; seed 0; held-out splits of at least 10"
    ) in shown
    assert "statistic label_counts of train (laplace, ε 0.5, δ 0; card.statistic entry" in shown


def test_a_malformed_package_option_is_refused_before_composing(tmp_path: Path) -> None:
    odd = _cli("pipeline", "compose", str(tmp_path), "--out", str(tmp_path / "p.json"),
               "--package", "mnist")  # fmt: skip
    assert odd.exit_code == 1
    _one_error(odd.output, "--package 'mnist': write DATASET_ID=PACKAGE")


def test_compose_checks_file_names_against_the_package(
    workspace: Workspace, tmp_path: Path
) -> None:
    _, _, package = _provider(workspace, tmp_path)
    parts = tmp_path / "parts"
    shutil.copytree(MNIST, parts, ignore=shutil.ignore_patterns("data", "model", "*.py", "*.sh"))
    out = tmp_path / "pipeline.json"
    ok = _cli("pipeline", "compose", str(parts), "--out", str(out), "--package", f"mnist={package}")
    assert ok.exit_code == 0, ok.output
    dataset = yaml.safe_load((parts / "dataset.yaml").read_text())
    dataset["source"]["labels"] = "t10k-labels-idx1-ubyte"
    (parts / "dataset.yaml").write_text(yaml.safe_dump(dataset))
    bad = _cli(
        "pipeline", "compose", str(parts), "--out", str(out), "--package", f"mnist={package}"
    )
    assert bad.exit_code == 1
    _one_error(bad.output, "dataset mnist (package sha256:")
    _one_error(bad.output, "no file 't10k-labels-idx1-ubyte' in the package")


def test_declare_with_the_package_names_a_held_out_file_it_lacks(
    workspace: Workspace, tmp_path: Path
) -> None:
    _, _, package = _provider(workspace, tmp_path)  # no t10k files sealed
    declaration = {
        "dataset": "mnist",
        "train": {"source": {"format": "idx", "images": IMAGES, "labels": LABELS}},
        "test": {"source": {"format": "idx", "images": T10K_IMAGES, "labels": T10K_LABELS}},
        "min_size": 10,
    }
    (tmp_path / "declaration.yaml").write_text(yaml.safe_dump(declaration))
    out = tmp_path / "mnist.decl.json"
    done = _cli("dataset", "declare", str(tmp_path / "declaration.yaml"), "--as", "hospital",
                "--out", str(out), "--package", str(package))  # fmt: skip
    assert done.exit_code == 1
    _one_error(
        done.output,
        f"the provider's declared test source: no file '{T10K_IMAGES}' in the package; it "
        f"holds {IMAGES}, {LABELS}",
    )
    assert not out.exists()
