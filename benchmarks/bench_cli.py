"""How long a `sealroom` command takes to answer, against Python's own start in the same run.

Each command runs N times as a fresh process (as from a shell); the table gives the median
and the fastest wall time, the ratio to ``python -c pass`` and the time over
``python -c "import typer"`` (the floor of any typer CLI). Commands: ``--help``, the light
ones (``ledger verify``, ``party list``/``show``, ``contract list``/``show``) in a fresh
workspace with three parties and a proposed contract, and ``pipeline compose
scenarios/mnist``. ``--before`` adds what every call and compose cost before issue 16:
importing every command module, and the loss components compose used to import (torch,
MONAI). Prints figures; asserts nothing about timings.

    python benchmarks/bench_cli.py [--runs 7] [--before] [--json out.json]

(``--before`` rows run at most 3 times: importing torch and MONAI takes seconds.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sealroom.cli.main import COMMANDS  # noqa: E402

CLI = [sys.executable, "-c", "from sealroom.cli.main import main; main()"]
TEMPLATE = ROOT / "docs" / "contract-template.yaml"
BEFORE_RUNS = 3


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn to exit, and the CPU seconds the process used (less load-sensitive).

    A failing command is an error, not a figure.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[3:]) or args}: exit {result.returncode}\n{result.stderr}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu


def workspace(home: Path, env: dict[str, str]) -> None:
    """Three parties (keys unencrypted: no passphrase prompt) and a proposed contract."""
    subprocess.run([*CLI, "init", "--home", str(home)], env=env, check=True, capture_output=True)
    for name, role in (("hospital", "provider"), ("lab", "consumer"), ("operator", "operator")):
        args = ["party", "create", name, "--role", role, "--no-passphrase"]
        subprocess.run([*CLI, *args], env=env, check=True, capture_output=True)
    args = ["contract", "propose", str(TEMPLATE), "--as", "lab"]
    subprocess.run([*CLI, *args], env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", action="store_true", help="also the pre-issue-16 imports")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp) / "ws"
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path, "SEALROOM_HOME": str(home)}
        workspace(home, env)
        out = Path(tmp) / "mnist.pipeline.json"
        every_module = "; ".join(
            f"import {m}" for m in sorted({e.module for e in COMMANDS.values()})
        )
        cases: list[tuple[str, list[str]]] = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ('python -c "import typer"', [sys.executable, "-c", "import typer"]),
            ("sealroom --help", [*CLI, "--help"]),
            ("sealroom ledger verify", [*CLI, "ledger", "verify"]),
            ("sealroom party list", [*CLI, "party", "list"]),
            ("sealroom party show hospital", [*CLI, "party", "show", "hospital"]),
            ("sealroom contract list", [*CLI, "contract", "list"]),
            ("sealroom contract show mnist-demo", [*CLI, "contract", "show", "mnist-demo"]),
            (
                "sealroom pipeline compose scenarios/mnist",
                [*CLI, "pipeline", "compose", str(ROOT / "scenarios" / "mnist"), "--out", str(out)],
            ),
        ]
        if opts.before:
            cases += [
                ("before: import every command module", [sys.executable, "-c", every_module]),
                (
                    "before: compose's loss import (torch, MONAI)",
                    [sys.executable, "-c", "import sealroom.train.components.losses"],
                ),
            ]
        figures: dict[str, list[float]] = {label: [] for label, _ in cases}
        cpu: dict[str, list[float]] = {label: [] for label, _ in cases}
        for _label, args in cases:  # one warm-up each: the page cache, not the code, is cold
            timed(args, env)
        for run in range(opts.runs):  # interleaved, so load changes hit every command alike
            for label, args in cases:
                if label.startswith("before:") and run >= BEFORE_RUNS:
                    continue  # torch and MONAI take seconds: a few runs tell enough
                elapsed, used = timed(args, env)
                figures[label].append(elapsed)
                cpu[label].append(used)

    base = statistics.median(figures["python -c pass"])
    typer_floor = statistics.median(figures['python -c "import typer"'])
    load = os.getloadavg()[0]
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}, {opts.runs} runs each (median, fastest)"
    )
    print(
        f"{'command':46} {'median':>8} {'fastest':>8} {'× pass':>7} {'over typer':>11} {'CPU':>7}"
    )
    rows = []
    for label, times in figures.items():
        median = statistics.median(times)
        used = statistics.median(cpu[label])
        row = {
            "command": label,
            "median_s": round(median, 4),
            "fastest_s": round(min(times), 4),
            "ratio_to_python": round(median / base, 2),
            "over_typer_s": round(median - typer_floor, 4),
            "cpu_median_s": round(used, 4),
        }
        rows.append(row)
        print(
            f"{label:46} {median * 1000:7.0f}ms {min(times) * 1000:7.0f}ms "
            f"{median / base:6.1f}× {(median - typer_floor) * 1000:+10.0f}ms "
            f"{used * 1000:5.0f}ms"
        )
    if opts.json:
        opts.json.write_text(json.dumps({"runs": opts.runs, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
