"""Verification time per evidence type, on real published evidence.

Each row verifies one piece of evidence N times through the registered verifier (what the
key service calls for every release) and gives the median and the 95th percentile. Two
baselines are measured in the same run: the INSECURE software evidence (one Ed25519
signature over a JSON claims document), and each hardware type's bare vendor primitive
(one ECDSA P-384 verify for SEV-SNP, one bare ``dcap_qvl.verify`` for TDX), so the
ratios say what sealroom's checks add around the cryptography. The first verification in
a fresh process (roots loaded and pinned, dcap-qvl imported) is timed separately.
Prints figures; asserts nothing about timings.

    python benchmarks/bench_attest.py [--runs 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from machine_info import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import load_pem_x509_certificate

from sealroom.attest.evidence import Evidence
from sealroom.attest.software import SoftwareAttester
from sealroom.attest.verifiers import verify_evidence
from sealroom.workspace import Workspace
from tests.attest import snp_real, tdx_samples

ROOT = Path(__file__).resolve().parents[1]
FIRST_CALL = """
import sys, time
sys.path.insert(0, {root!r})
from tests.attest import snp_real, tdx_samples
from sealroom.attest.evidence import Evidence
from sealroom.attest.verifiers import verify_evidence
kind = sys.argv[1]
if kind == "sev-snp":
    ev = Evidence(tee_type="sev-snp", payload=snp_real.vs_report(), certificates=[snp_real.VS_VCEK])
    now = snp_real.NOW
else:
    ev, now = tdx_samples.evidence(), tdx_samples.NOW
start = time.perf_counter()
verify_evidence(ev, None, now)
print((time.perf_counter() - start) * 1000)
"""


def timed(call: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, p95) in milliseconds after one warm-up call."""
    call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def bare_ecdsa(report: bytes, vcek_pem: str) -> Callable[[], None]:
    with warnings.catch_warnings():  # AMD's VCEKs carry serial 0
        warnings.simplefilter("ignore")
        key = load_pem_x509_certificate(vcek_pem.encode()).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    r = int.from_bytes(report[0x2A0:0x2E8], "little")
    s = int.from_bytes(report[0x2E8:0x330], "little")
    signature = encode_dss_signature(r, s)
    return lambda: key.verify(signature, report[:0x2A0], ec.ECDSA(hashes.SHA384()))


def bare_dcap() -> Callable[[], object]:
    import dcap_qvl

    quote = tdx_samples.sample("tdx_quote")
    collateral = dcap_qvl.QuoteCollateralV3.from_json(tdx_samples.collateral())
    now = int(tdx_samples.NOW.timestamp())
    return lambda: dcap_qvl.verify(quote, collateral, now)


def first_call_ms(kind: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", FIRST_CALL.format(root=str(ROOT)), kind],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # The software attester's log line says INSECURE on every call; not the point here.
    import logging

    logging.getLogger("sealroom.attest").setLevel(logging.ERROR)

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as home:
        ws = Workspace.create(Path(home) / "ws")
        software = SoftwareAttester(ws).attest(bytes(64))
        soft_med, soft_p95 = timed(lambda: verify_evidence(software, ws), args.runs)
        rows.append({"evidence": "software (INSECURE), baseline", "median_ms": soft_med,
                     "p95_ms": soft_p95, "x_software": 1.0})  # fmt: skip

        snp_cases = [
            ("sev-snp Milan (virtee/sev)", snp_real.vs_report(), snp_real.VS_VCEK),
            ("sev-snp Genoa (project-oak)", snp_real.oak_report("genoa"), snp_real.OAK_GENOA_VCEK),
            ("sev-snp Turin (project-oak)", snp_real.oak_report("turin"), snp_real.OAK_TURIN_VCEK),
        ]
        for name, report, vcek in snp_cases:
            evidence = Evidence(tee_type="sev-snp", payload=report, certificates=[vcek])
            med, p95 = timed(lambda e=evidence: verify_evidence(e, None, snp_real.NOW), args.runs)  # type: ignore[misc]
            prim, _ = timed(bare_ecdsa(report, vcek), args.runs)
            rows.append({"evidence": name, "median_ms": med, "p95_ms": p95,
                         "x_software": med / soft_med, "primitive_ms": prim,
                         "x_primitive": med / prim})  # fmt: skip

        tdx = tdx_samples.evidence()
        med, p95 = timed(lambda: verify_evidence(tdx, None, tdx_samples.NOW), args.runs)
        prim, _ = timed(bare_dcap(), args.runs)
        rows.append({"evidence": "tdx v4 quote (dcap-qvl sample)", "median_ms": med,
                     "p95_ms": p95, "x_software": med / soft_med, "primitive_ms": prim,
                     "x_primitive": med / prim})  # fmt: skip

    first = {kind: first_call_ms(kind) for kind in ("sev-snp", "tdx")}
    print(f"Attestation verification, {args.runs} runs each — {machine()}")
    header = ("evidence", "median", "p95", "x software", "primitive", "x prim")
    print(f"{header[0]:34} {header[1]:>9} {header[2]:>9} {header[3]:>11} {header[4]:>10} "
          f"{header[5]:>7}")  # fmt: skip
    for row in rows:
        prim_ms = f"{row['primitive_ms']:.2f} ms" if "primitive_ms" in row else ""
        x_prim = f"{row['x_primitive']:.1f}" if "x_primitive" in row else ""
        print(f"{row['evidence']!s:34} {row['median_ms']:7.2f} ms {row['p95_ms']:7.2f} ms "
              f"{row['x_software']:10.1f}x {prim_ms:>10} {x_prim:>7}")  # fmt: skip
    print("primitive: one bare ECDSA P-384 verify (SEV-SNP) / one bare dcap_qvl.verify (TDX)")
    for kind, ms in first.items():
        print(f"first {kind} verification in a fresh process: {ms:.1f} ms (roots, imports)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "first_call_ms": first}, indent=2))


if __name__ == "__main__":
    main()
