"""Real TDX quotes and collateral from dcap-qvl's samples (tests/data/README.md), pinned times."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sealroom.attest.evidence import Evidence

DATA = Path(__file__).resolve().parents[1] / "data" / "attest" / "tdx"
# Inside both the TCB info and QE identity windows of each quote's collateral (and its CRLs).
NOW = datetime(2025, 7, 1, tzinfo=UTC)  # tdx_quote
OUTDATED_NOW = datetime(2026, 3, 1, tzinfo=UTC)  # tdx_quote_outdated

FMSPC = "b0c06f000000"
OUTDATED_FMSPC = "90c06f000000"
MRTD = (
    "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
    "de03ae6dc5f87f27428b2538873118b7"
)
OUTDATED_MRTD = (
    "273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1"
    "ae451d382d5a9b1b4c0ed0e5ae9a3dbd"
)
RTMRS = [
    "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c"
    "48aca29b220b80b6a540cf994b9bc9c0",
    "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7"
    "aea8c323c173019b3093d54e579e9378",
    "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3"
    "ba80b70870d7330733642e01d48c3132",
    "00" * 48,
]
REPORT_DATA = bytes.fromhex(
    "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9"
    "eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20"
)


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def collateral(name: str = "tdx_quote") -> str:
    return (DATA / f"{name}_collateral.json").read_text(encoding="ascii")


def evidence(payload: bytes | None = None, collateral_json: str | None = None) -> Evidence:
    """The real v4 quote with its own collateral, unless told otherwise."""
    return Evidence(
        tee_type="tdx",
        payload=sample("tdx_quote") if payload is None else payload,
        collateral=collateral() if collateral_json is None else collateral_json,
    )
