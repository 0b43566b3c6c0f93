"""Key release latency, embedded and over loopback HTTP, as a multiple of a bare HPKE round trip.

One run measures all three on the same machine: the baseline (seal a 32-byte key to a fresh
X25519 key and open it), the full release protocol with an in-process KeyService (nonce,
software attestation, evidence and contract verification, both Rego policies, ledger entry,
HPKE), and the same through KmsClient against `sealroom kms serve` on 127.0.0.1.

Usage: python benchmarks/bench_release.py [--n 50]
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from machine_info import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sealroom.attest import SoftwareAttester
from sealroom.crypto.hpke import generate_ephemeral, open_sealed, seal_to
from sealroom.crypto.passphrase import passphrase_in_effect
from sealroom.httpguard import new_token
from sealroom.kms import KeyService, KmsClient, ReleasePolicy
from sealroom.kms.fetch import fetch_data_key
from sealroom.kms.server import create_app, guard_settings
from sealroom.pipeline.compose import pipeline_digest
from sealroom.workspace import Workspace
from tests.kms.factories import (
    CONTRACT_ID,
    DATASET_DIGEST,
    consumer_signature,
    make_parties,
    make_pipeline,
    store_contract,
)


def timed(fn: Callable[[], object], n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="releases per mode")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.create(Path(tmp) / "ws")
        with passphrase_in_effect(b"bench passphrase (throwaway workspace)"):
            store_contract(ws, make_parties(ws))
        data_key = secrets.token_bytes(32)
        attester = SoftwareAttester(ws)
        policy = ReleasePolicy(
            contract_id=CONTRACT_ID,
            package_digest=DATASET_DIGEST,
            measurements=[attester.measurement],
            allow_insecure=True,
        )
        pipeline = make_pipeline()
        digest = pipeline_digest(pipeline)
        with passphrase_in_effect(b"bench passphrase (throwaway workspace)"):
            signature = consumer_signature(ws, digest)  # the consumer signed the pipeline

        def bare_hpke() -> None:
            private_key, public_b64 = generate_ephemeral()
            sealed = seal_to(public_b64, data_key, b"bench")
            assert open_sealed(private_key, sealed, b"bench") == data_key

        def release_with(service: object) -> Callable[[], None]:
            def run() -> None:
                key = fetch_data_key(
                    service,  # type: ignore[arg-type]
                    attester,
                    contract_id=CONTRACT_ID,
                    package_digest=DATASET_DIGEST,
                    pipeline=pipeline,
                    pipeline_digest=digest,
                    pipeline_signature=signature,
                )
                assert key == data_key

            return run

        with KeyService(ws) as service:
            service.import_key(DATASET_DIGEST, data_key, "hospital", CONTRACT_ID, policy)
            base = timed(bare_hpke, max(args.n * 10, 200))
            embedded = timed(release_with(service), args.n)

        port = free_port()
        token = new_token()
        guard = guard_settings(port, token, rate=1e6)  # measure the protocol, not the limiter
        server = uvicorn.Server(
            uvicorn.Config(create_app(ws, guard), host="127.0.0.1", port=port, log_level="error")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        with KmsClient(f"http://127.0.0.1:{port}", token=token) as client:
            http = timed(release_with(client), args.n)
        server.should_exit = True
        thread.join(timeout=10)

    b = statistics.median(base)
    e = statistics.median(embedded)
    h = statistics.median(http)
    print(f"machine: {machine()}")
    print(f"bare HPKE seal+open round trip : {b * 1e6:9.1f} us (median of {len(base)})")
    print(
        f"release, embedded KeyService   : {e * 1e3:9.2f} ms (median of {len(embedded)})"
        f"  = {e / b:7.0f} x HPKE"
    )
    print(
        f"release, HTTP on loopback      : {h * 1e3:9.2f} ms (median of {len(http)})"
        f"  = {h / b:7.0f} x HPKE"
    )
    print(f"HTTP / embedded                : {h / e:9.2f} x")


if __name__ == "__main__":
    main()
