"""The collateral cache: what `attest collateral add` accepts, refuses and where it files it."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sealroom.attest.collateral import (
    add_document,
    collateral_dir,
    list_collateral,
    snp_documents,
    tdx_collateral,
)
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace

DATA = Path(__file__).resolve().parents[1] / "data" / "attest"
VCEK_DER = DATA / "snp" / "vs_vcek_milan.der"
CHAIN_PEM = DATA / "collateral" / "vs_cert_chain_milan"
TDX_JSON = DATA / "tdx" / "tdx_quote_collateral.json"


@pytest.mark.filterwarnings("ignore:Parsed a serial number")  # AMD's VCEK serials
def test_a_der_vcek_is_stored_as_pem_under_its_digest(workspace: Workspace) -> None:
    entry = add_document(workspace, VCEK_DER)
    assert entry.tee_type == "sev-snp" and entry.kind == "certificate"
    assert entry.path.startswith("snp/") and entry.path.endswith(".pem")
    [document] = snp_documents(workspace)
    cert = x509.load_pem_x509_certificate(document.encode())
    assert cert.public_bytes(serialization.Encoding.DER) == VCEK_DER.read_bytes()
    assert "SEV-VCEK" in entry.subjects[0]


def test_a_pem_chain_keeps_every_certificate(workspace: Workspace) -> None:
    entry = add_document(workspace, CHAIN_PEM)
    assert [s.split(",")[0] for s in entry.subjects] == ["CN=SEV-Milan", "CN=ARK-Milan"]
    assert snp_documents(workspace)[0].count("BEGIN CERTIFICATE") == 2


def test_adding_the_same_document_twice_files_it_once(workspace: Workspace) -> None:
    first, second = add_document(workspace, CHAIN_PEM), add_document(workspace, CHAIN_PEM)
    assert first.path == second.path and len(snp_documents(workspace)) == 1


def test_tdx_collateral_is_filed_under_the_fmspc_of_its_tcb_info(workspace: Workspace) -> None:
    entry = add_document(workspace, TDX_JSON)
    assert (entry.tee_type, entry.fmspc, entry.path) == (
        "tdx",
        "b0c06f000000",
        "tdx/b0c06f000000.json",
    )
    assert entry.not_after == dt.datetime(2025, 7, 19, 10, 16, 3, tzinfo=dt.UTC)
    assert tdx_collateral(workspace, "B0C06F000000") == TDX_JSON.read_text()


def test_list_describes_every_cached_document(workspace: Workspace) -> None:
    for path in (VCEK_DER, CHAIN_PEM, TDX_JSON):
        add_document(workspace, path)
    entries = list_collateral(workspace)
    assert [e.tee_type for e in entries] == ["sev-snp", "sev-snp", "tdx"]
    assert entries[-1].fmspc == "b0c06f000000"


def _crl_and_key(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test CRL issuer")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(now)
        .next_update(now + dt.timedelta(days=7))
        .sign(key, hashes.SHA384())
    )
    crl_path = tmp_path / "crl.der"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crl_path, key_path


def test_a_der_crl_is_accepted_with_its_next_update(workspace: Workspace, tmp_path: Path) -> None:
    crl, _ = _crl_and_key(tmp_path)
    entry = add_document(workspace, crl)
    assert entry.kind == "crl" and entry.subjects == ["CRL of CN=test CRL issuer"]
    assert entry.not_after == dt.datetime(2025, 1, 8, tzinfo=dt.UTC)


def _tdx_variant(tmp_path: Path, **changes: object) -> Path:
    document = json.loads(TDX_JSON.read_text())
    tcb_info = json.loads(document["tcb_info"])
    for key, value in changes.items():
        if key.startswith("tcb_"):
            tcb_info[key[4:]] = value
        elif value is None:
            del document[key]
        else:
            document[key] = value
    document["tcb_info"] = json.dumps(tcb_info)
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(document))
    return path


REFUSED = [
    (lambda p: _crl_and_key(p)[1], "PEM block 0 is a PRIVATE KEY, not a certificate or CRL"),
    (lambda p: _write(p, b"hello"), "neither PEM nor a DER certificate or CRL"),
    (lambda p: _write(p, CHAIN_PEM.read_bytes() + b"\nextra"), "text outside the PEM blocks"),
    (
        lambda p: _write(p, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        "PEM block 0 (CERTIFICATE) does not parse",
    ),
    (
        lambda p: _write(p, b"{}"),
        "not dcap-qvl QuoteCollateralV3 JSON (missing pck_crl_issuer_chain",
    ),
    (lambda p: _write(p, b"{not json"), "not JSON"),
    (lambda p: _write(p, b"[1]"), "not a JSON object"),
    (lambda p: _tdx_variant(p, qe_identity=None), "missing qe_identity"),
    (lambda p: _tdx_variant(p, extra="x"), "unexpected keys extra"),
    (lambda p: _tdx_variant(p, tcb_id="SGX"), "TCB info is for SGX, not TDX"),
    (lambda p: _tdx_variant(p, tcb_fmspc="../../x"), "fmspc '../../x' is not 6 bytes of hex"),
    (lambda p: p / "missing.pem", "no such file"),
]


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "doc"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make", "line"), REFUSED, ids=[line[:40] for _, line in REFUSED])
def test_anything_else_is_refused_in_one_line_and_nothing_is_stored(
    workspace: Workspace, tmp_path: Path, make: object, line: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(AttestationError) as refused:
        add_document(workspace, path)
    assert line in str(refused.value) and "\n" not in str(refused.value)
    stored = collateral_dir(workspace)
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))


def test_a_document_larger_than_the_limit_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    big = tmp_path / "big.pem"
    shutil.copy(CHAIN_PEM, big)
    with big.open("ab") as handle:
        handle.truncate((1 << 20) + 1)
    with pytest.raises(AttestationError, match="larger than 1048576 bytes"):
        add_document(workspace, big)
