"""The MRI story (tiny settings): three hospitals, DP-SGD in the room, privacy report and
sample overlays decrypted by the lab, the budget charged per dataset, no plaintext left."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealroom.ledger import Ledger
from sealroom.room.story import Scenario, Story, StoryResult, load_scenario
from sealroom.workspace import Workspace
from tests.e2e.stories import QuietNarrator, scan_for_plaintext

HOSPITALS = ("hospital_a", "hospital_b", "hospital_c")


def tiny_scenario() -> Scenario:
    """The shipped story with three patients per hospital on small volumes."""
    scenario = load_scenario("mri")
    providers = [
        p.model_copy(
            update={"prepare": [*p.prepare, "--patients", "3", "--shape", "32", "32", "12"]}
        )
        for p in scenario.providers
    ]
    return scenario.model_copy(update={"providers": providers})


@pytest.fixture(scope="module")
def mri_story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StoryResult]]:
    base = tmp_path_factory.mktemp("mri-story")
    tmpdir = tmp_path_factory.mktemp("mri-room-tmp")
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmpdir)
    try:
        yield base, Story(tiny_scenario(), base, QuietNarrator(), epochs=1).play()
    finally:
        if saved is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved


def test_mri_story_trains_privately_and_releases_what_the_contract_allows(
    mri_story: tuple[Path, StoryResult],
) -> None:
    _, result = mri_story
    record = result.receipt.record
    assert set(record.datasets) == set(HOSPITALS)
    assert record.metrics == {}  # released metrics reach the consumer sealed, not the receipt
    metrics = json.loads((result.outputs / "metrics.json").read_bytes())["metrics"]
    assert {"dice", "jaccard", "hausdorff"} <= set(metrics)
    names = {p.name for p in result.files}
    assert {"trained_model.onnx", "privacy_report.json"} <= names
    # The contract names `samples`, but overlays show records: a private run makes none.
    assert "segmentation_samples.png" not in names
    report = json.loads((result.outputs / "privacy_report.json").read_bytes())
    assert 0 < report["epsilon_spent"] <= 8.0
    log = (result.outputs / "training_log.txt").read_text()
    assert "(BatchNorm2d) with GroupNorm" in log and "DP-SGD: n=" in log
    ws = Workspace.find(result.home)
    with Ledger.open(ws) as ledger:
        ledger.verify()
        kinds = [e.kind for e in ledger.entries()]
    assert kinds.count("key.released") == 3


def test_mri_story_leaves_no_slice_in_the_workspace(mri_story: tuple[Path, StoryResult]) -> None:
    base, result = mri_story
    markers = []
    for hospital in HOSPITALS:
        data = (base / f"provider-{hospital}" / hospital / "slices.h5").read_bytes()
        markers.append(data[len(data) // 2 : len(data) // 2 + 64])
    leaks = scan_for_plaintext([Workspace.find(result.home).home, result.run_dir], markers)
    assert leaks == []
