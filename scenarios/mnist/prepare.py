"""MNIST scenario, provider side: write scikit-learn's handwritten digits as MNIST-format IDX files.

The digits are real handwriting but 8x8 with values 0..16. MNIST digits are
20x20 and centred in a 28x28 frame, so each digit is scaled to 0..255,
upsampled to 20x20 (bilinear) and padded by 4 pixels: the scenario's CNN expects
[1, 28, 28], and the same configs then run unchanged on real MNIST or
Fashion-MNIST IDX files (same file names, same layout).

    python -m scenarios.mnist.prepare OUT_DIR [--no-gzip]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from sealroom.data.loaders.idx import idx_bytes

IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 scikit-learn digits as uint8 ``[N, 28, 28]`` images and uint8 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = np.zeros((len(small), 28, 28), dtype=np.uint8)
    for i, image in enumerate(small):
        big = Image.fromarray(image).resize((20, 20), Image.Resampling.BILINEAR)
        images[i, 4:24, 4:24] = np.asarray(big)
    return images, digits.target.astype(np.uint8)


def prepare(out_dir: Path, compress: bool = True) -> dict[str, Path]:
    """Write the images and labels IDX files (gzipped unless ``compress`` is off) to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images, labels = digits_28x28()
    suffix = ".gz" if compress else ""
    written = {}
    for key, name, array in (("images", IMAGES, images), ("labels", LABELS, labels)):
        data = idx_bytes(array)
        path = out_dir / f"{name}{suffix}"
        path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
        written[key] = path
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--no-gzip", action="store_true", help="write raw IDX files")
    args = parser.parse_args(argv)
    for key, path in prepare(args.out_dir, compress=not args.no_gzip).items():
        print(f"{key}: {path}")


if __name__ == "__main__":
    main()
