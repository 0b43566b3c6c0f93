"""Fashion-MNIST, provider side: copy the four IDX files into the dataset folder.

The files come from the system package (``apt-get install dataset-fashion-mnist``, which
puts them in /usr/share/datasets/fashion-mnist): 60,000 training and 10,000 t10k test
images, 28×28 uint8, in the MNIST IDX layout. The provider's dataset declaration
(scenarios/dp-fashion/declaration.yaml) names t10k as the held-out test split by file.

    python -m scenarios.fashion.prepare OUT_DIR [--source /usr/share/datasets/fashion-mnist]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

SOURCE = Path("/usr/share/datasets/fashion-mnist")
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


class MissingData(Exception):
    """The Fashion-MNIST files are not installed; the message says how to install them."""


def prepare(out_dir: Path, source: Path = SOURCE) -> list[Path]:
    """Copy the IDX files from ``source`` to ``out_dir``; MissingData names what is absent."""
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise MissingData(
            f"Fashion-MNIST: {source / missing[0]} not found; install the files with "
            "`apt-get install dataset-fashion-mnist` (or pass --source DIR holding "
            f"{', '.join(FILES)})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(source / name, out_dir / name)) for name in FILES]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--source", type=Path, default=SOURCE)
    args = parser.parse_args(argv)
    try:
        written = prepare(args.out_dir, args.source)
    except MissingData as exc:
        sys.exit(str(exc))
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
