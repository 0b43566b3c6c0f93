"""Clean-room overhead: `sealroom run` vs `sealroom train --local`, same pipeline and data.

Both are timed end to end as the user runs them (a fresh `sealroom` process each, wall
clock): the local run reads the cleartext Fashion-MNIST IDX files; the room run verifies
the contract, checks the policy, attests, gets both keys released, decrypts the sealed
package in memory, trains, filters and seals the outputs and writes the receipt. The
pipeline is the MNIST scenario's on Fashion-MNIST's 60,000 + 10,000 images, split so
that its single epoch trains on 60,200 samples. The two alternate; the best of each is
compared. Prints the fixed overhead (room − local, seconds) and the ratio (goal: ≤ 3 s
and ≤ 1.10), every time measured, and the machine.

    python benchmarks/bench_room.py [--fashion /usr/share/datasets/fashion-mnist] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import machine

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "mnist"
CONTRACT_ID = "fashion-bench"


def fashion_pipeline_file(out: Path) -> Path:
    """bench_train's Fashion-MNIST pipeline (60,200 to train), on the CPU, written to ``out``."""
    from bench_train import fashion_pipeline

    from sealroom.pipeline.compose import compose, dump_pipeline

    pipeline = fashion_pipeline(compose(SCENARIO))
    cpu = pipeline.train.model_copy(update={"device": "cpu"})
    out.write_text(dump_pipeline(pipeline.model_copy(update={"train": cpu})))
    return out


def setup(base: Path, fashion: Path) -> tuple[Path, Path]:
    """Workspace with parties, sealed data and model, a signed contract and pipeline, imported
    keys."""
    from scenarios.mnist.save_model import make_model, model_onnx_bytes
    from sealroom.attest.measure import measure_runtime
    from sealroom.contract.workflow import propose_contract, sign_contract
    from sealroom.crypto.identity import create_party
    from sealroom.crypto.package import seal
    from sealroom.kms.models import ReleasePolicy
    from sealroom.kms.service import KeyService
    from sealroom.pipeline.signing import sign_pipeline_file
    from sealroom.workspace import Workspace

    ws = Workspace.create(base / "workspace")
    provider = create_party(ws, "hospital", "provider")
    consumer = create_party(ws, "lab", "consumer")
    create_party(ws, "operator", "operator")
    model_dir = base / "model"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(model_onnx_bytes(make_model(0)))
    data = seal(fashion, provider, ws.packages / "fashion.sealed", format="dataset")
    model = seal(model_dir, consumer, ws.packages / "model.sealed", format="model")
    pipeline = fashion_pipeline_file(base / "pipeline.json")
    draft = {
        "id": CONTRACT_ID,
        "purpose": "Benchmark: the MNIST CNN on Fashion-MNIST in a clean room.",
        "parties": [
            {"name": "hospital", "role": "provider"},
            {"name": "lab", "role": "consumer"},
            {"name": "operator", "role": "operator"},
        ],
        "datasets": [
            {"id": f"fashion_{part}", "provider": "hospital", "package_digest": data.digest}
            for part in ("train", "test")
        ],
        "model": {"owner": "lab", "package_digest": model.digest},
        "consumer": "lab",
        "constraints": {
            "model_formats": ["onnx"],
            "optimizers": ["adam"],
            "losses": ["cross_entropy"],
            "metrics": ["loss", "accuracy", "f1", "precision", "recall", "confusion_matrix"],
            "max_epochs": 1,
            "released_outputs": ["model", "metrics", "plots"],
            "max_runtime_s": 1800,
        },
        "room": {"allow_insecure": True, "tee_types": ["software"]},
        "expires": "1d",
    }
    (base / "contract.json").write_text(json.dumps(draft))
    propose_contract(ws, base / "contract.json", "lab")
    sign_contract(ws, CONTRACT_ID, "hospital")
    sign_contract(ws, CONTRACT_ID, "operator")
    sign_pipeline_file(ws, pipeline, CONTRACT_ID, "lab")  # key services release to no other
    with KeyService(ws) as service:
        for sealed, owner in ((data, "hospital"), (model, "lab")):
            policy = ReleasePolicy(
                contract_id=CONTRACT_ID,
                package_digest=sealed.digest,
                measurements=[measure_runtime()],
                allow_insecure=True,
            )
            service.import_key(sealed.digest, sealed.data_key, owner, CONTRACT_ID, policy)
    return ws.home, pipeline


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of the command and every process it waited for (the room too)."""
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, _children_cpu() - cpu


def _show(name: str, runs: list[tuple[float, float]]) -> None:
    walls = ", ".join(f"{w:.2f}" for w, _ in runs)
    cpus = ", ".join(f"{c:.2f}" for _, c in runs)
    best = min(w for w, _ in runs), min(c for _, c in runs)
    print(f"{name}: wall best {best[0]:.2f} s ({walls}); CPU best {best[1]:.2f} s ({cpus})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="bench-room-") as tmp:
        base = Path(tmp)
        from sealroom.crypto.passphrase import passphrase_in_effect

        with passphrase_in_effect(b"bench passphrase (throwaway workspace)"):
            home, pipeline = setup(base, args.fashion)
        env = {**os.environ, "SEALROOM_HOME": str(home), "PYTHONPATH": str(ROOT)}
        cli = [str(Path(sys.executable).parent / "sealroom")]
        local_argv = [
            *cli, "train", "--local", str(pipeline), "--model-dir", str(base / "model"),
            "--data", f"fashion_train={args.fashion}", "--data", f"fashion_test={args.fashion}",
        ]  # fmt: skip
        room_argv = [*cli, "run", "--contract", CONTRACT_ID, "--pipeline", str(pipeline), "--json"]
        local: list[tuple[float, float]] = []
        room: list[tuple[float, float]] = []
        for i in range(args.repeats):
            local.append(timed([*local_argv, "--out", str(base / f"local-{i}")], env))
            room.append(timed(room_argv, env))
            print(f"repeat {i + 1}: local {local[-1]}, room {room[-1]} (wall, CPU s)", flush=True)
    print(f"machine: {machine()}")
    print("workload: 1 epoch, 60,200 training samples (Fashion-MNIST), batch 64, 1 thread")
    _show("sealroom train --local", local)
    _show("sealroom run          ", room)
    for what, index in (("wall", 0), ("CPU", 1)):
        best_local = min(r[index] for r in local)
        best_room = min(r[index] for r in room)
        print(
            f"{what}: fixed overhead {best_room - best_local:.2f} s (goal <= 3 s), "
            f"ratio room/local {best_room / best_local:.3f} (goal <= 1.10)"
        )


if __name__ == "__main__":
    main()
