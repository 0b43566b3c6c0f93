"""Confidential inference against plain ONNX Runtime behind the same HTTP stack, one run.

Every figure is measured in this run, on this machine, against the baseline of
benchmarks/infer_baseline.py (same hardened FastAPI app, uvicorn, ModelEngine, DynamicBatcher
and output policy; no HPKE, no client signature, no receipts). Servers run in their own
process (uvicorn on 127.0.0.1, port 0) so that clients and server never share a GIL; the
clients are asyncio tasks in this process, one connection each.

1. batch-1 latency, one client, p50 and p99: sealroom / baseline (goal <= 1.2);
2. where a sealroom request's time goes (server stage timings from /v1/stats, the client's
   HPKE seal and open, and the rest: HTTP and the event loop);
3. HPKE cost per request (client seal + open, server open + seal), in-process;
4. throughput with 32 concurrent clients, dynamic batching vs max_batch_size=1, for the
   MNIST CNN and for ResNet-18 on 32x32 inputs (goal >= 3x there), sealroom and baseline.

Usage: python benchmarks/bench_infer.py [--requests N] [--quick] [--models mnist,resnet18]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infer_load import LoadResult, RawClient, Request, ServerProcess, load
from infer_models import MODELS, BenchModel
from infer_sealroom import SealroomRoom, hpke_costs
from machine_info import machine

OPTIONS: dict[str, Any] = {"threads": 1, "allow_unsandboxed": False}
BATCHED = {"max_batch_size": 32, "max_wait_ms": 5.0}
UNBATCHED = {"max_batch_size": 1, "max_wait_ms": 0.0}


@dataclass
class Served:
    """One server (its own process) for one model and batch setting, and how to query it."""

    kind: str
    url: str
    request: Request
    stats: Callable[[], dict[str, Any]]
    receipt_check_us: Callable[[], float]
    pid: int
    stop: Callable[[], None]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(
    kind: str, model: BenchModel, path: Path, state: Path, batching: dict[str, float]
) -> Served:
    """The baseline in infer_server.py's process, or a real sealroom serving room."""
    example = np.random.default_rng(0).random((1, *model.shape), dtype=np.float32)
    if kind == "sealroom":
        room = SealroomRoom(model, batching, state, OPTIONS["allow_unsandboxed"]).start()
        return Served(
            kind, room.url, room.request(example), room.stats, room.receipt_check_us, room.pid,
            room.stop,
        )  # fmt: skip
    argv = [
        str(Path(__file__).with_name("infer_server.py")), kind, "--model", str(path),
        "--shape", ",".join(map(str, model.shape)),
        "--max-batch-size", str(batching["max_batch_size"]),
        "--max-wait-ms", str(batching["max_wait_ms"]),
        "--threads", str(OPTIONS["threads"]),
    ]  # fmt: skip
    process = ServerProcess(argv)
    body = example.tobytes()

    async def plain(http: RawClient, index: int) -> None:
        answer = await http.post("/v1/infer", body, "application/octet-stream")
        if answer.status_code != 200:
            raise RuntimeError(f"HTTP {answer.status_code}: {answer.content[:200]!r}")
        if len(answer.json()["outputs"]) != 1:
            raise RuntimeError("wrong number of outputs")

    return Served(kind, process.url, plain, dict, lambda: 0.0, process.proc.pid, process.stop)


def batch_1_latency(
    model: BenchModel, path: Path, root: Path, n: int, hpke: dict[str, float]
) -> tuple[dict[str, Any], dict[str, float]]:
    """One client, one example a request, unbatched servers: p50/p99 and the breakdown."""
    print(f"\n== batch-1 latency, one client, {model.name}, unbatched, {n} requests")
    servers = {
        kind: start(kind, model, path, root / f"lat-{model.name}-{kind}", UNBATCHED)
        for kind in ("baseline", "sealroom")
    }
    try:
        warm(servers, 1)
        lat = interleaved(servers, n, 1, rounds=10)
        breakdown = servers["sealroom"].stats()
        receipt_us = servers["sealroom"].receipt_check_us()
    finally:
        for served in servers.values():
            served.stop()
    for kind, result in lat.items():
        _show(kind, result)
    p50 = lat["sealroom"].p50_ms / lat["baseline"].p50_ms
    p99 = lat["sealroom"].p99_ms / lat["baseline"].p99_ms
    print(f"  sealroom / baseline: p50 {p50:.2f}x, p99 {p99:.2f}x (goal <= 1.2)")
    figures: dict[str, Any] = {k: _summary(v) for k, v in lat.items()}
    figures |= {"p50_ratio": round(p50, 3), "p99_ratio": round(p99, 3)}
    print(f"  where a sealroom request's time goes ({model.name}, batch 1, means):")
    stages = _stages(breakdown, lat["sealroom"].mean_ms, hpke)
    for stage, ms in stages.items():
        print(f"    {stage:<34} {ms:8.3f} ms")
    print(f"  a client's offline check of one receipt proof: {receipt_us:.1f} us (median)")
    stages["client receipt proof check (not in the round trip above)"] = receipt_us / 1000
    return figures, stages


def warm(servers: dict[str, Served], clients: int) -> None:
    """A block of requests to each server first: connections, sessions, caches."""
    for served in servers.values():
        load(served.url, served.request, max(2 * clients, 10), clients)


def interleaved(
    servers: dict[str, Served], n: int, clients: int, rounds: int
) -> dict[str, LoadResult]:
    """``n`` requests to each server from ``clients`` clients, in ``rounds`` alternating
    blocks (order reversed every round), so a neighbour's load on this shared machine falls
    on every server alike."""
    results = {key: LoadResult() for key in servers}
    keys = list(servers)
    for block in range(rounds):
        for key in keys if block % 2 == 0 else keys[::-1]:
            part = load(servers[key].url, servers[key].request, n // rounds, clients)
            results[key].latencies += part.latencies
            results[key].seconds += part.seconds
            results[key].client_cpu_s += part.client_cpu_s
            for message, count in part.errors.items():
                results[key].errors[message] = results[key].errors.get(message, 0) + count
    return results


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(b) else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="latency requests per server")
    parser.add_argument("--quick", action="store_true", help="few requests: a smoke run")
    parser.add_argument("--models", default="mnist,resnet18")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="ONNX Runtime intra-op threads, every server alike (the room reads OMP_NUM_THREADS)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-unsandboxed", action="store_true",
        help="let the room run where Landlock/seccomp are missing (said in the output)",
    )  # fmt: skip
    args = parser.parse_args()
    OPTIONS.update(threads=args.threads, allow_unsandboxed=args.allow_unsandboxed)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    n = 60 if args.quick else args.requests
    names = [m for m in args.models.split(",") if m]
    print(f"machine: {machine()}")
    print("servers: one process each (uvicorn, 127.0.0.1); clients: asyncio in this process")
    print(
        f"note: {os.cpu_count()} logical CPUs shared by servers and clients; absolute figures "
        "move with the machine's load, the ratios (same run, alternating blocks) are the result"
    )
    print(
        f"ONNX Runtime intra-op threads: {args.threads}"
        + ("; room UNSANDBOXED (--allow-unsandboxed)" if args.allow_unsandboxed else "")
    )
    figures: dict[str, Any] = {"machine": machine(), "requests": n}
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        root = Path(tmp)
        models = {name: MODELS[name]() for name in names}
        paths = {}
        for name, model in models.items():
            paths[name] = root / f"{name}.onnx"
            paths[name].write_bytes(model.onnx)

        print("\n== HPKE cost per request (in-process, MNIST example, median)")
        costs = hpke_costs(
            models.get("mnist") or next(iter(models.values())), 200 if args.quick else 2000
        )
        for stage, us in costs.items():
            print(f"  {stage:<28} {us:8.1f} us")
        figures["hpke_us"] = costs

        figures["latency"], figures["breakdown_ms"] = {}, {}
        for name in names:
            count = n if name == "mnist" else max(40, n // 4)
            lat, stages = batch_1_latency(models[name], paths[name], root, count, costs)
            figures["latency"][name], figures["breakdown_ms"][name] = lat, stages

        figures["throughput"] = {}
        for name in names:
            model = models[name]
            count = max(n, 4 * args.clients) if name == "mnist" else max(4 * args.clients, n // 4)
            ceiling = batching_ceiling(model)
            print(
                f"\n== {model.name}: ONNX Runtime alone, examples/s at batch 1 "
                f"{ceiling['batch_1']:.0f}, at batch 32 {ceiling['batch_32']:.0f}: "
                f"{ceiling['gain']:.2f}x is all batching can gain from the model itself"
            )
            print(f"== throughput, {args.clients} clients, {model.name}, {count} requests each")
            servers = {
                f"{kind} {label}": start(
                    kind, model, paths[name], root / f"tp-{name}-{kind}-{label}", batching
                )
                for kind in ("baseline", "sealroom")
                for label, batching in (("unbatched", UNBATCHED), ("batched", BATCHED))
            }
            try:
                warm(servers, args.clients)
                cpu0 = {k: v.cpu_seconds() for k, v in servers.items()}
                rows = interleaved(servers, count, args.clients, rounds=3)
                cpu = {k: v.cpu_seconds() - cpu0[k] for k, v in servers.items()}
                cpu = {
                    k: cpu[k] * 1000 / max(1, rows[k].count + sum(rows[k].errors.values()))
                    for k in cpu
                }
                batches = {k: v.stats().get("mean_batch_examples") for k, v in servers.items()}
            finally:
                for served in servers.values():
                    served.stop()
            for key, result in rows.items():
                client_cpu = result.client_cpu_s * 1000 / max(1, result.count)
                extra = f"CPU ms/req: server {cpu[key]:.2f}, clients {client_cpu:.2f}"
                if batches[key] is not None:
                    extra += f", mean batch {batches[key]} examples"
                _show(key, result, extra)
            for kind in ("baseline", "sealroom"):
                gain = rows[f"{kind} batched"].throughput / rows[f"{kind} unbatched"].throughput
                print(f"  {kind}: batched / unbatched throughput {gain:.2f}x")
            for label in ("unbatched", "batched"):
                cost = rows[f"sealroom {label}"].throughput / rows[f"baseline {label}"].throughput
                print(f"  {label}: sealroom / baseline throughput {cost:.2f}x")
            table: dict[str, Any] = {k: _summary(v) for k, v in rows.items()}
            for key in rows:
                table[key] |= {"server_cpu_ms_per_req": round(cpu[key], 3)}
                table[key] |= {
                    "client_cpu_ms_per_req": round(
                        rows[key].client_cpu_s * 1000 / max(1, rows[key].count), 3
                    )
                }
                table[key] |= {"mean_batch_examples": batches[key]}
            figures["throughput"][name] = table | {"ort_alone_examples_per_s": ceiling}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def batching_ceiling(model: BenchModel, seconds: float = 2.0) -> dict[str, float]:
    """Examples per second of the bare ONNX Runtime session at batch 1 and batch 32 (as many
    intra-op threads as the servers)."""
    from sealroom.contract.inference import InputSignature
    from sealroom.serve.engine import ModelEngine

    engine = ModelEngine.from_bytes(
        model.onnx,
        InputSignature(dtype="float32", shape=list(model.shape)),
        threads=OPTIONS["threads"],
    )
    rates = {}
    for size in (1, 32):
        batch = np.random.default_rng(0).random((size, *model.shape), dtype=np.float32)
        engine.run(batch)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 2:
            engine.run(batch)
            done += size
        rates[f"batch_{size}"] = done / (time.perf_counter() - started)
    return rates | {"gain": rates["batch_32"] / rates["batch_1"]}


def _show(label: str, result: LoadResult, extra: str = "") -> None:
    errors = sum(result.errors.values())
    print(
        f"  {label:<20} p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms  "
        f"{result.throughput:8.1f} req/s  errors {errors}  {extra}"
    )
    for message, count in list(result.errors.items())[:3]:
        print(f"    {count} x {message}")


def _summary(result: LoadResult) -> dict[str, Any]:
    return {
        "count": result.count,
        "errors": sum(result.errors.values()),
        "p50_ms": round(result.p50_ms, 3),
        "p99_ms": round(result.p99_ms, 3),
        "mean_ms": round(result.mean_ms, 3),
        "req_per_s": round(result.throughput, 1),
    }


def _stages(
    stats: dict[str, Any], client_mean_ms: float, hpke: dict[str, float]
) -> dict[str, float]:
    """Server stage means (from its /v1/stats histograms) beside the client's own costs."""
    means = {name: (h.get("mean_ms") or 0.0) for name, h in stats.get("stages_ms", {}).items()}
    out = {f"server {name}": float(ms) for name, ms in means.items() if name != "total"}
    client = (hpke["client seal request"] + hpke["client open response"]) / 1000
    out["client HPKE seal + open"] = client
    server_total = float(means.get("total") or sum(v for k, v in means.items() if k != "http"))
    out["server total (handler)"] = server_total
    out["rest: HTTP, event loops, network"] = client_mean_ms - server_total - client
    out["client round trip (mean)"] = client_mean_ms
    return out


if __name__ == "__main__":
    from sealroom.crypto.passphrase import passphrase_in_effect

    # The rooms' throwaway workspaces encrypt their parties' keys under a fixed passphrase.
    with passphrase_in_effect(b"sealroom bench passphrase (throwaway workspaces)"):
        main()
