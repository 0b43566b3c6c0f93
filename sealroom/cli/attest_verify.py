"""`sealroom attest verify`: check a room's evidence file the way the key service will, before
pinning its measurement (signature and chain, optional release terms, optional binding)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console, refusals
from sealroom.errors import AttestationError

if TYPE_CHECKING:
    from sealroom.attest.evidence import Claims, Evidence
    from sealroom.attest.policy import HardwarePolicy


def verify(
    evidence_file: Path = typer.Argument(..., help="Evidence JSON (tee_type, payload, ...)."),
    nonce: str | None = typer.Option(None, "--nonce", help="Nonce the evidence must bind (hex)."),
    key: str | None = typer.Option(
        None, "--key", help="Ephemeral X25519 public key it must bind (base64)."
    ),
    policy_file: Path | None = typer.Option(
        None, "--policy", help="YAML/JSON hardware policy (measurements, snp, tdx) to apply."
    ),
    now: datetime | None = typer.Option(
        None, "--now", help="Verify as of this time (ISO 8601 with zone; default: now)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Verify an evidence file and print its claims, or one line saying why it is refused.

    Example: sealroom attest verify room-evidence.json --policy room-policy.yaml
    """
    from sealroom.attest.software import INSECURE_LABEL
    from sealroom.attest.verifiers import verify_evidence
    from sealroom.workspace import Workspace

    with refusals():
        if (nonce is None) != (key is None):
            raise AttestationError("--nonce and --key go together: the binding covers both")
        if now is not None and now.tzinfo is None:
            raise AttestationError("--now needs a timezone, e.g. 2025-07-01T00:00:00Z")
        evidence = _load_evidence(evidence_file)
        policy = _load_policy(policy_file) if policy_file is not None else None
        claims = verify_evidence(evidence, Workspace.find(), now, policy)
        if nonce is not None and key is not None:
            _check_binding(claims, nonce, key)
    report = _claims_report(claims, policy is not None, nonce is not None)
    if claims.insecure:
        err_console.print(f"[bold yellow]{INSECURE_LABEL}[/]", highlight=False)
    if json_out:
        emit_json(report)
        return
    for name, value in report.items():
        if value not in (None, "", [], {}):
            console.print(f"{name:<13} {value}", highlight=False, soft_wrap=True)


def _load_evidence(path: Path) -> Evidence:
    from pydantic import ValidationError

    from sealroom.attest.evidence import Evidence

    try:
        if path.stat().st_size > 1 << 20:
            raise AttestationError(f"{path}: larger than 1 MiB; not an evidence file")
        return Evidence.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise AttestationError(f"{path}: cannot read ({exc.strerror})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "evidence"
        raise AttestationError(f"{path}: {where}: {first['msg']}") from None


def _load_policy(path: Path) -> HardwarePolicy:
    import yaml
    from pydantic import ValidationError

    from sealroom.attest.policy import HardwarePolicy

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        return HardwarePolicy.model_validate(document)
    except OSError as exc:
        raise AttestationError(f"{path}: cannot read ({exc.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise AttestationError(f"{path}: not YAML or JSON") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "policy"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise AttestationError(f"{path}: {where}: {message}") from None


def _check_binding(claims: Claims, nonce_hex: str, key_b64: str) -> None:
    from sealroom.attest.evidence import binds

    try:
        nonce = bytes.fromhex(nonce_hex)
    except ValueError:
        raise AttestationError("--nonce is not hex") from None
    if not binds(claims, nonce, key_b64):
        raise AttestationError(
            "the evidence's report_data does not bind this nonce and key "
            "(expected SHA-512(nonce || key))"
        )


def _claims_report(claims: Claims, policy: bool, bound: bool) -> dict[str, Any]:
    """Every claim (report_data as hex), then what was checked beyond the signature."""
    report: dict[str, Any] = claims.model_dump(mode="json")
    report["report_data"] = claims.report_data.hex()
    report["policy"] = "met" if policy else "not checked (no --policy)"
    report["binding"] = "nonce and key bound" if bound else "not checked (no --nonce/--key)"
    return report
