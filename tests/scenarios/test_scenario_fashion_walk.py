"""scenarios/fashion/walk.sh end to end on the first 2,000 / 500 Fashion-MNIST records: the
shop's signed card (t10k held out by its declaration), the lab's mock run, compose against
the package, the room, the receipt and the decrypted results (README.md is this walk)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from scenarios.fashion.prepare import FILES, SOURCE

# About 80 s of command start-ups and a room run: `make test-all` walks it. `make test` keeps
# its pieces (cards, mock data, compose, declared splits) in their own tests and the MNIST
# story end to end (tests/e2e).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SOURCE / FILES[0]).is_file():
        pytest.skip("dataset-fashion-mnist not installed")
    work = tmp_path_factory.mktemp("fashion-walk")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHON"] = sys.executable
    env.pop("SEALROOM_HOME", None)
    result = subprocess.run(
        [str(REPO / "scenarios/fashion/walk.sh"), str(work), "2000", "500"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (work / "walk.log").write_text(result.stdout)
    return work


def test_the_room_trains_the_cnn_as_written_on_the_declared_splits(walk: Path) -> None:
    metrics = json.loads((walk / "lab-results" / "metrics.json").read_text())
    assert metrics["metrics"]["accuracy"] >= 0.75
    assert metrics["samples"] == {"train": 1800, "val": 200, "test": 500}  # t10k is the test set
    assert metrics["checkpoint"] == "best" and metrics["weights_epoch"] == metrics["best_epoch"]
    assert metrics["confusion_matrix"]["labels"][:5] == CLASSES
    trained = onnx.load_from_string((walk / "lab-results" / "trained_model.onnx").read_bytes())
    ops = {node.op_type for node in trained.graph.node}
    assert {"BatchNormalization", "Dropout"} <= ops  # trained as written, not folded


def test_the_lab_saw_the_card_and_developed_on_mock_data_only(walk: Path) -> None:
    log = (walk / "walk.log").read_text()
    assert "card    signed by shop, verified" in log
    assert "declared splits: dataset fashion: train train-images-idx3-ubyte.gz; val 0.1 of " in log
    assert "statistic label_counts of train (laplace, ε 0.5" in log
    mock = json.loads((walk / "mock-run" / "metrics.json").read_text())
    assert mock["mock"] is True
    assert (walk / "mock-run" / "training_log.txt").read_text().startswith("MOCK DATA")


def test_keys_went_only_to_the_room_and_the_card_statistic_was_charged(walk: Path) -> None:
    def kinds(home: str) -> list[str]:
        db = sqlite3.connect(walk / home / "ledger.db")
        try:
            return [row[0] for row in db.execute("SELECT kind FROM entries ORDER BY seq")]
        finally:
            db.close()

    room = kinds("room")
    assert room.count("key.released") == 2 and room[-1] == "run.completed"
    assert "card.statistic" in kinds("shop")
