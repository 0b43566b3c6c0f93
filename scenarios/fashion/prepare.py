"""Fashion-MNIST, provider side: copy the four IDX files into the dataset folder.

The files come from the system package (``apt-get install dataset-fashion-mnist``, which
puts them in /usr/share/datasets/fashion-mnist): 60,000 training and 10,000 t10k test
images, 28×28 uint8, in the MNIST IDX layout. The provider's dataset declaration
(scenarios/dp-fashion/declaration.yaml) names t10k as the held-out test split by file.

    python -m scenarios.fashion.prepare OUT_DIR [--source /usr/share/datasets/fashion-mnist]
        [--train N --test N]   # the first N records of each file only (quick walks and tests)
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

from sealroom.data.loaders.idx import idx_bytes, parse_idx

SOURCE = Path("/usr/share/datasets/fashion-mnist")
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


class MissingData(Exception):
    """The Fashion-MNIST files are not installed; the message says how to install them."""


def prepare(
    out_dir: Path, source: Path = SOURCE, train: int | None = None, test: int | None = None
) -> list[Path]:
    """Copy the IDX files from ``source`` to ``out_dir`` (the first ``train`` / ``test`` records
    only, when given); MissingData names what is absent."""
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise MissingData(
            f"Fashion-MNIST: {source / missing[0]} not found; install the files with "
            "`apt-get install dataset-fashion-mnist` (or pass --source DIR holding "
            f"{', '.join(FILES)})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        limit = test if name.startswith("t10k") else train
        if limit is None:
            written.append(Path(shutil.copyfile(source / name, out_dir / name)))
        else:
            written.append(_write_head(source / name, out_dir / name, limit))
    return written


def _write_head(src: Path, dst: Path, limit: int) -> Path:
    """The first ``limit`` records of an IDX file, gzipped like the original (mtime 0)."""
    ndim = 3 if "images" in src.name else 1
    array = parse_idx(src.read_bytes(), src.name, ndim)[:limit]
    dst.write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    return dst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--train", type=int, default=None, help="keep the first N training records")
    parser.add_argument("--test", type=int, default=None, help="keep the first N t10k records")
    args = parser.parse_args(argv)
    try:
        written = prepare(args.out_dir, args.source, args.train, args.test)
    except MissingData as exc:
        sys.exit(str(exc))
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
