"""Fixtures for the training tests: one thread, a tiny pipeline and its data."""

from __future__ import annotations

import pytest
import torch

from sealroom.data import MemoryTree
from sealroom.pipeline.schema import Pipeline
from tests.train.tiny import classification_pipeline, idx_tree


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def tiny_pipeline() -> Pipeline:
    return classification_pipeline()


@pytest.fixture
def tiny_trees() -> dict[str, MemoryTree]:
    return {"blobs": idx_tree()}
