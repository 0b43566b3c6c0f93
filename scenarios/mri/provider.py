"""MRI story, one hospital's provider step: its patient folders, prepared into slices.

    python -m scenarios.mri.provider hospital_a OUT_DIR [--patients 40] [--size 48]

Generates the hospital's BraTS-layout patient folders (``sealroom.data.synthetic_mri``,
the same bytes ``generate`` writes for it) into ``raw/`` beside ``OUT_DIR`` — never inside
it, since ``OUT_DIR`` is what the hospital seals — then runs ``prepare`` on them. A
hospital with real scans runs ``prepare`` on its own folder instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scenarios.mri.prepare import PrepareConfig, prepare
from sealroom.data.synthetic_mri import PROVIDERS, write_provider


def provide(
    hospital: str,
    out_dir: Path,
    patients: int = 40,
    shape: tuple[int, int, int] = (64, 64, 48),
    size: int = 48,
    seed: int = 0,
) -> dict[str, object]:
    """Write the hospital's raw folders beside ``out_dir`` and prepare them into it."""
    names = [p.name for p in PROVIDERS]
    if hospital not in names:
        raise SystemExit(f"error: unknown hospital {hospital!r} (known: {', '.join(names)})")
    index = names.index(hospital)
    raw = out_dir.parent / "raw"
    write_provider(raw, PROVIDERS[index], patients, seed, shape, provider_index=index)
    return prepare(raw, out_dir, PrepareConfig(size=(size, size), seed=seed))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("hospital", help="hospital_a .. hospital_d")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 64, 48])
    parser.add_argument("--size", type=int, default=48, help="slice side after prepare")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shape = (args.shape[0], args.shape[1], args.shape[2])
    summary = provide(args.hospital, args.out_dir, args.patients, shape, args.size, args.seed)
    summary.pop("file", None)
    print(f"{args.hospital}: prepared {json.dumps(summary)}")


if __name__ == "__main__":
    main()
