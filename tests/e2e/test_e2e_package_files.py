"""A pipeline naming a file its package does not hold is refused by the room before any key
is released (or budget reserved), with one line naming the dataset, the package, what it
holds and the nearest name; the card the provider publishes says the same names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sealroom.cli.main import app
from sealroom.ledger import Ledger
from sealroom.pipeline.signing import sign_pipeline_file
from tests.e2e.stories import PlayedStory

MNIST = Path(__file__).resolve().parents[2] / "scenarios" / "mnist"


def _pipeline_reading(story: PlayedStory, tmp_path: Path, images: str) -> Path:
    document = json.loads((story.base / "consumer-lab" / "pipeline.json").read_text())
    document["datasets"][0]["source"]["images"] = images
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(document))
    sign_pipeline_file(story.ws, path, "mnist-demo", "lab")
    return path


def test_a_wrong_file_name_is_refused_before_any_key_release(
    mnist_story: PlayedStory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = _pipeline_reading(mnist_story, tmp_path, "t10k-images-idx3-ubyte")
    monkeypatch.setenv("SEALROOM_HOME", str(mnist_story.ws.home))
    with Ledger.open(mnist_story.ws) as ledger:
        before = len(ledger.entries())
    done = CliRunner().invoke(app, ["run", "--contract", "mnist-demo", "--pipeline", str(pipeline)])
    assert done.exit_code == 1
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    text = " ".join(done.output.split())
    assert len(errors) == 1, done.output
    assert "dataset mnist (package sha256:" in text
    assert "no file 't10k-images-idx3-ubyte' in the package; it holds " in text
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in text
    assert "(did you mean 'train-images-idx3-ubyte.gz'?)" in text
    with Ledger.open(mnist_story.ws) as ledger:
        new = ledger.entries()[before:]
    [failed] = [e for e in new if e.kind == "run.failed"]
    run_id = failed.payload["run_id"]
    assert failed.payload["stage"] == "policy"
    assert "no file 't10k-images-idx3-ubyte'" in str(failed.payload["reason"])
    kinds = {e.kind for e in new}
    assert "key.released" not in kinds and "budget.reserved" not in kinds
    with Ledger.open(mnist_story.ws) as ledger:
        assert not ledger.find("key.released", run_id=run_id)
    assert not (mnist_story.ws.runs / str(run_id)).exists()


def test_the_provider_cards_the_sealed_package_and_anyone_shows_it(
    mnist_story: PlayedStory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEALROOM_HOME", str(mnist_story.ws.home))
    package = mnist_story.ws.packages / "mnist.sealed"
    data = mnist_story.base / "provider-hospital" / "mnist"
    runner = CliRunner()
    args = ["package", "card", str(data), "--package", str(package)]
    done = runner.invoke(app, [*args, "--draft", str(MNIST / "card.yaml"), "--as", "hospital"])
    try:
        assert done.exit_code == 0, done.output
        shown = runner.invoke(app, ["package", "show", str(package), "--json"])
        assert shown.exit_code == 0, shown.output
        card = json.loads(shown.stdout)["card"]
        [source] = card["sources"]
        assert source["records"] == 1797
        assert source["features"] == {
            "shape": [1, 28, 28],
            "dtype": "float32",
            "range": {"min": 0.0, "max": 1.0},
        }
        assert source["target"]["classes"] == [str(i) for i in range(10)]
        assert [f["path"] for f in card["files"]] == [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
        ]
    finally:
        (package / "card.json").unlink(missing_ok=True)
