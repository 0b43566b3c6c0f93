"""Reading a contract file (JSON or YAML) at the edge, with errors that name file and field.

Two conveniences for hand-written drafts, resolved once at ``propose`` time and then frozen
into the signed bytes: a party's public keys (and an inference client's signing key) may be
left out (taken from the workspace's identity of that name), and ``not_before`` may be left
out (now) with ``expires`` given as a duration such as ``30d``, ``12h`` or ``90m``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sealroom.contract.schema import Contract
from sealroom.errors import ContractError
from sealroom.files import read_capped

KeyResolver = Callable[[str], tuple[str, str] | None]
"""party name -> (signing_key, encryption_key) base64, or None if unknown."""

MAX_CONTRACT_BYTES = 1 << 20  # a contract is a page of YAML; refuse a file that is not
_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def describe_validation(source: str, error: ValidationError) -> str:
    """One line: ``source: field.path: message; ...`` for every problem pydantic found."""
    parts = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        parts.append(f"{where}: {problem['msg']}")
    return f"{source}: " + "; ".join(parts)


def read_document(path: Path) -> dict[str, Any]:
    """Parse JSON or YAML (chosen by suffix) into a mapping; ContractError naming the file."""
    raw = read_capped(path, MAX_CONTRACT_BYTES, "a contract file", ContractError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except RecursionError:
        raise ContractError(f"{path}: nested too deeply to be a contract") from None
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        kind = "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"
        raise ContractError(f"{path}: not valid {kind}: {first}") from None
    if not isinstance(data, dict):
        raise ContractError(f"{path}: a contract must be a mapping at the top level")
    return data


def _expand(data: dict[str, Any], resolve: KeyResolver | None, now: datetime) -> dict[str, Any]:
    data = dict(data)
    parties = data.get("parties")
    if isinstance(parties, list) and resolve is not None:
        filled = []
        for party in parties:
            if (
                isinstance(party, dict)
                and "name" in party
                and ("signing_key" not in party or "encryption_key" not in party)
            ):
                keys = resolve(str(party["name"]))
                if keys is not None:
                    party = {"signing_key": keys[0], "encryption_key": keys[1], **party}
            filled.append(party)
        data["parties"] = filled
    inference = data.get("inference")
    if isinstance(inference, dict) and isinstance(inference.get("clients"), list) and resolve:
        clients = []
        for client in inference["clients"]:
            if isinstance(client, dict) and "name" in client and "signing_key" not in client:
                keys = resolve(str(client["name"]))
                if keys is not None:
                    client = {"signing_key": keys[0], **client}
            clients.append(client)
        data["inference"] = {**inference, "clients": clients}
    if "not_before" not in data:
        data["not_before"] = now.replace(microsecond=0)
    expires = data.get("expires")
    if isinstance(expires, str) and (match := _DURATION.match(expires)):
        start = data["not_before"]
        if isinstance(start, str):
            start = datetime.fromisoformat(start.replace("Z", "+00:00"))
        if isinstance(start, datetime):
            delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            data["expires"] = start + delta
    return data


def load_contract_file(
    path: Path, resolve: KeyResolver | None = None, now: datetime | None = None
) -> Contract:
    """Read and validate a contract draft; ContractError ``"FILE: field.path: message"``."""
    data = _expand(read_document(path), resolve, now or datetime.now(UTC))
    try:
        return Contract.model_validate(data)
    except ValidationError as exc:
        raise ContractError(describe_validation(str(path), exc)) from None
