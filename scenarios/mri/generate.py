"""MRI scenario: write synthetic BraTS-like hospitals (see sealroom.data.synthetic_mri).

    python -m scenarios.mri.generate OUT_DIR [--providers 3] [--patients 8] [--shape 96 96 48]

writes ``OUT_DIR/hospital_a/BraTS_A_001/BraTS_A_001_flair.nii.gz`` (+ ``_seg``, ``_t1``
with --t1) and so on; the same seed always writes the same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sealroom.data.synthetic_mri import DEFAULT_SHAPE, write_cohort


def generate(
    out_dir: Path,
    providers: int = 3,
    patients: int = 8,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    t1: bool = False,
) -> dict[str, list[str]]:
    """Write the hospitals' patient folders; returns hospital name -> patient ids."""
    modalities = ("flair", "t1") if t1 else ("flair",)
    return write_cohort(out_dir, providers, patients, seed, shape, modalities)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--providers", type=int, default=3, help="hospitals, 1..4")
    parser.add_argument("--patients", type=int, default=8, help="patients per hospital")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", type=int, nargs=3, default=list(DEFAULT_SHAPE))
    parser.add_argument("--t1", action="store_true", help="also write a T1 volume per patient")
    args = parser.parse_args(argv)
    cohort = generate(
        args.out_dir, args.providers, args.patients, args.seed, tuple(args.shape), args.t1
    )
    for hospital, patients in cohort.items():
        print(f"{hospital}: {len(patients)} patients in {args.out_dir / hospital}")


if __name__ == "__main__":
    main()
