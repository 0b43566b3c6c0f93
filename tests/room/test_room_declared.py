"""The operator finds the declarations a contract pins; the room's channel stays light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sealroom.crypto.identity import Party
from sealroom.pipeline.declaration import parse_declaration, save_declaration, sign_declaration
from sealroom.room.declared import declarations_dir, find_declarations
from tests.kms.factories import make_contract

SOURCE = {"format": "idx", "images": "train-images", "labels": "train-labels"}
REPO = Path(__file__).resolve().parents[2]


def test_the_pinned_declaration_is_found_in_the_workspace_and_others_are_left(
    tmp_path: Path,
) -> None:
    hospital = Party.generate("hospital", "provider")
    body = {"dataset": "mnist", "train": {"source": SOURCE}, "test": {"fraction": 0.1}}
    pinned = sign_declaration(parse_declaration({**body, "min_size": 5}, "d"), hospital)
    other = sign_declaration(parse_declaration({**body, "min_size": 6}, "d"), hospital)
    folder = declarations_dir(tmp_path)
    save_declaration(folder / "a.json", pinned)
    save_declaration(folder / "b.json", other)
    (folder / "junk.json").write_text("{not json")
    contract = make_contract()
    ref = contract.datasets[0].model_copy(update={"declaration_digest": pinned.digest})
    contract = contract.model_copy(update={"datasets": [ref]})
    assert find_declarations(contract, tmp_path) == [pinned]
    assert find_declarations(contract, tmp_path / "elsewhere", [folder / "a.json"]) == [pinned]
    assert find_declarations(contract, tmp_path / "elsewhere", [folder / "b.json"]) == []


def test_the_rooms_channel_starts_no_thread_before_the_sandbox() -> None:
    # Landlock binds only the thread that calls it: the room reads its request (channel.py,
    # declarations included) before it is confined, so nothing imported there may start one.
    code = (
        "import sealroom.room.channel\n"
        "from sealroom.sandbox.confine import _thread_count\n"
        "print(_thread_count())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "1"


def test_a_contract_without_privacy_that_pins_a_declaration_is_split_by_it() -> None:
    from sealroom.room.declared import declared_splits
    from tests.kms.factories import contract_data, make_pipeline

    hospital = Party.generate("hospital", "provider")
    body = {"dataset": "mnist", "train": {"source": SOURCE}, "test": {"fraction": 0.1}}
    signed = sign_declaration(parse_declaration({**body, "min_size": 5}, "d"), hospital)
    data = contract_data({"hospital": hospital.identity})
    ref = {**data["datasets"][0], "privacy": None, "declaration_digest": signed.digest}
    limits = {**data["constraints"], "require_privacy": False}
    contract = make_contract({"hospital": hospital.identity}, datasets=[ref], constraints=limits)
    pipeline = make_pipeline(privacy=None)
    assert declared_splits(contract, pipeline, [signed]) == {"mnist": signed.declaration}
