"""DP-SGD benchmarks, one entry point: speed, accuracy and the privacy audits.

    python benchmarks/bench_dp.py speed [--samples 60000] [--repeats 3] [--mode fused]
        DP epoch / non-private epoch on the DP-MNIST CNN with a per-step breakdown
        (benchmarks/dp_speed.py).
    python benchmarks/bench_dp.py accuracy [--models cnn,scatter-linear,scatter-cnn]
        [--epsilons 1,3,8] [--tune] — Fashion-MNIST test accuracy with the evaluation
        charged (benchmarks/dp_accuracy.py).
    python benchmarks/bench_dp.py audit canary|mia ... — the one-run canary audit and the
        membership-inference attack with TPR at low FPR (benchmarks/dp_audit.py).

Each part's own ``--help`` lists its options.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import dp_accuracy
import dp_audit
import dp_speed

PARTS: dict[str, Callable[[list[str]], Any]] = {
    "speed": dp_speed.main,
    "accuracy": dp_accuracy.main,
    "audit": dp_audit.main,
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in PARTS:
        print(__doc__, file=sys.stderr)
        raise SystemExit(f"bench_dp: name a part: {', '.join(PARTS)}")
    PARTS[argv[0]](argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
