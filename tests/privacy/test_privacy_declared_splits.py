"""Issue 13: "The consumer also picks the split fractions and seed (a 0.98 test fraction is
allowed)". Under privacy terms the provider declares the held-out splits in a signed
declaration the contract pins; the pipeline's split is not used, a pipeline that trains on
the held-out file is refused, and a contract without a pinned declaration gets no key."""

from __future__ import annotations

import json
import secrets
from typing import Any

import numpy as np
import pytest

from sealroom.attest import SoftwareAttester
from sealroom.crypto.identity import Party
from sealroom.data import MemoryTree
from sealroom.data.declaration import (
    DatasetDeclaration,
    DeclarationError,
    SignedDeclaration,
    load_declared_splits,
    parse_declaration,
    sign_declaration,
)
from sealroom.errors import DataError, KeyReleaseDenied
from sealroom.kms import KeyService
from sealroom.pipeline.schema import Pipeline
from sealroom.policy import check_pipeline
from sealroom.privacy.trainer import DPTrainer
from sealroom.room.declared import declared_splits
from sealroom.train.run import run_pipeline
from sealroom.workspace import Workspace
from tests.kms.conftest import Room, default_policy
from tests.kms.factories import (
    CONTRACT_ID,
    DATASET_DIGEST,
    contract_data,
    make_contract,
    make_parties,
    make_pipeline,
    store_contract,
)
from tests.privacy.helpers import private_pipeline
from tests.train.tiny import idx_tree

TRAIN = {"format": "idx", "images": "train-images", "labels": "train-labels"}  # factories
HELD = {"format": "idx", "images": "t10k-images", "labels": "t10k-labels"}


def declaration(dataset: str = "mnist", **changes: Any) -> DatasetDeclaration:
    doc: dict[str, Any] = {
        "dataset": dataset,
        "train": {"source": TRAIN},
        "test": {"source": HELD},
        "val": {"fraction": 0.1},
        "seed": 0,
        "min_size": 20,
        **changes,
    }
    return parse_declaration(doc, "declaration.yaml")


def pinned_contract(hospital: Party, signed: SignedDeclaration | None, private: bool = True) -> Any:
    """The factories' contract (private, or without privacy terms), its provider
    ``hospital``, pinning ``signed``."""
    data = contract_data({"hospital": hospital.identity})
    ref = {**data["datasets"][0]}
    ref.pop("declaration_digest")
    if signed is not None:
        ref["declaration_digest"] = signed.digest
    if private:
        return make_contract({"hospital": hospital.identity}, datasets=[ref])
    ref["privacy"] = None
    limits = {**data["constraints"], "require_privacy": False}
    return make_contract({"hospital": hospital.identity}, datasets=[ref], constraints=limits)


@pytest.fixture
def hospital() -> Party:
    return Party.generate("hospital", "provider")


def test_private_contract_without_a_pinned_declaration_fails_the_policy(hospital: Party) -> None:
    decision = check_pipeline(pinned_contract(hospital, None), make_pipeline())
    assert decision.violations == [
        "dataset mnist pins no dataset declaration, which contract mnist-demo needs for its "
        "privacy terms (the provider signs one with `sealroom dataset declare`)"
    ]
    public = pinned_contract(hospital, None, private=False)
    assert check_pipeline(public, make_pipeline(privacy=None)).allow  # non-private: unchanged
    assert declared_splits(public, make_pipeline(privacy=None), []) is None


def test_key_service_releases_no_key_for_a_private_contract_without_a_declaration(
    workspace: Workspace,
) -> None:
    parties = make_parties(workspace)
    data = contract_data({n: p.identity for n, p in parties.items()})
    ref = {k: v for k, v in data["datasets"][0].items() if k != "declaration_digest"}
    store_contract(workspace, parties, datasets=[ref])
    room = Room(workspace, SoftwareAttester(workspace))
    with KeyService(workspace) as service:
        service.import_key(
            DATASET_DIGEST, secrets.token_bytes(32), "hospital", CONTRACT_ID, default_policy()
        )
        with pytest.raises(KeyReleaseDenied, match="dataset mnist pins no dataset declaration"):
            service.release(room.request(service))


def test_room_verifies_the_pinned_declaration_before_any_key(hospital: Party) -> None:
    signed = sign_declaration(declaration(), hospital)
    contract = pinned_contract(hospital, signed)
    verified = declared_splits(contract, make_pipeline(), [signed])
    assert verified == {"mnist": declaration()}
    with pytest.raises(DeclarationError, match="was not given to the room"):
        declared_splits(contract, make_pipeline(), [])
    # The operator (or consumer) hands over a declaration with a 0.98 test fraction instead.
    wish = sign_declaration(declaration(test={"fraction": 0.98}, val=None), hospital)
    with pytest.raises(DeclarationError, match="was not given to the room"):
        declared_splits(contract, make_pipeline(), [wish])
    # ...or the pinned one re-signed by someone else: the pin matches, the signature does not.
    forged = sign_declaration(declaration(), Party.generate("hospital", "provider"))
    with pytest.raises(DeclarationError, match="does not verify"):
        declared_splits(contract, make_pipeline(), [forged])
    with pytest.raises(DeclarationError, match="pins no dataset declaration"):
        declared_splits(pinned_contract(hospital, None), make_pipeline(), [signed])


def test_pipeline_training_on_the_held_out_file_is_refused_before_any_key(
    hospital: Party,
) -> None:
    signed = sign_declaration(declaration(), hospital)
    pipeline = make_pipeline(datasets=[{"id": "mnist", "source": HELD}])
    with pytest.raises(DataError, match=r"reads t10k-images .* declared train-images as the"):
        declared_splits(pinned_contract(hospital, signed), pipeline, [signed])


def tiny_declaration(**changes: Any) -> DatasetDeclaration:
    source = {
        "format": "idx",
        "images": "train-images-idx3-ubyte",
        "labels": "train-labels-idx1-ubyte",
    }
    doc = {"train": {"source": source}, "test": {"fraction": 0.2}, "val": {"fraction": 0.1}}
    return parse_declaration({"dataset": "blobs", "seed": 5, "min_size": 10, **doc, **changes}, "d")


def consumer_pipeline(**split: Any) -> Pipeline:
    doc = private_pipeline(epochs=1).model_dump(mode="json")
    doc["split"] = {"train": 0.01, "val": 0.01, "test": 0.98, "seed": 1, **split}
    return Pipeline.model_validate(doc)


def test_the_consumers_098_test_fraction_and_seed_play_no_part() -> None:
    tree = {"blobs": idx_tree(200)}
    decl = tiny_declaration()
    pipeline = consumer_pipeline()
    splits = load_declared_splits({"blobs": decl}, pipeline.datasets, pipeline.join, tree)
    assert splits.sizes() == {"train": 140, "val": 20, "test": 40}
    other = consumer_pipeline(seed=99)
    again = load_declared_splits({"blobs": decl}, other.datasets, other.join, tree)
    assert np.array_equal(splits.test.x, again.test.x)  # the consumer's seed moves nothing
    outcome = run_pipeline(
        pipeline, tree, MemoryTree({}), trainer_factory=DPTrainer, device="cpu", splits=splits
    )
    report = json.loads(outcome.outputs["privacy_report.json"])
    assert report["n_train"] == 140  # trained on the declared 140 records only


def test_a_held_out_split_below_the_providers_minimum_is_refused() -> None:
    pipeline = consumer_pipeline()
    with pytest.raises(DataError, match=r"test split holds 12 records, fewer than .* 13"):
        load_declared_splits(
            {"blobs": tiny_declaration(min_size=13, val=None)},
            pipeline.datasets,
            pipeline.join,
            {"blobs": idx_tree(60)},
        )
