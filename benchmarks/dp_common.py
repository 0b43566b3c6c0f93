"""What the DP benchmarks share: Fashion-MNIST from Debian's files and the DP-MNIST CNN as
the room gets it (ONNX converted by onnx2torch)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scenarios.mnist.dp_cnn import make_model  # noqa: E402
from scenarios.mnist.save_model import model_onnx_bytes  # noqa: E402
from sealroom.data import ArrayDataset, DirectoryTree, MemoryTree  # noqa: E402
from sealroom.data.loaders import load_dataset  # noqa: E402
from sealroom.pipeline.compose import compose  # noqa: E402
from sealroom.pipeline.schema import DatasetConfig, IdxSource  # noqa: E402
from sealroom.train.models import build_model  # noqa: E402

DP_MNIST = ROOT / "scenarios" / "dp-mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def fashion(part: str) -> ArrayDataset:
    """Fashion-MNIST's 60,000 training images (``train``) or its 10,000 t10k images."""
    prefix = "train" if part == "train" else "t10k"
    cfg = DatasetConfig(
        id=f"fashion_{part}",
        source=IdxSource(
            images=f"{prefix}-images-idx3-ubyte.gz", labels=f"{prefix}-labels-idx1-ubyte.gz"
        ),
    )
    return load_dataset(cfg, DirectoryTree(FASHION))


def dp_cnn(seed: int = 0) -> torch.nn.Module:
    """The DP-MNIST CNN (scenarios/mnist/dp_cnn.py) the way the room gets it."""
    tree = MemoryTree({"model.onnx": model_onnx_bytes(make_model(seed))})
    return build_model(compose(DP_MNIST).model, tree)
