"""Provisioning a served model: only the model owner's signature provisions, rotates or retires.

A model statement is a small document the contract's model owner signs, with the signing key
the contract pins for it, over a domain-separated message::

    "sealroom/model-statement/v1\\n" || RFC 8785 JSON of the statement without its signature

Statements live in the ledger (``model.provisioned`` / ``model.rotated`` / ``model.retired``,
whose payload is the signed statement itself). The serving state is never stored anywhere
else: :func:`current_model` replays the statements of one contract in ledger order and
checks every signature and every transition again, so an entry the operator appends on its
own (it holds the ledger key, not the owner's) changes nothing. Transitions::

    (none) --provision D0--> D0 --rotate D0->D1--> D1 --retire D1--> retired (final)

Each statement carries a random id and its issue time; the same statement twice is a replay.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sealroom.contract.canonical import contract_digest
from sealroom.contract.loading import describe_validation
from sealroom.contract.schema import DIGEST_PATTERN, ID_PATTERN, NAME_PATTERN, Contract
from sealroom.contract.signed import SignedContract
from sealroom.contract.store import contract_lock, load_contract, verify_contract
from sealroom.crypto.rotation import fingerprint_of, load_party_with_keys
from sealroom.crypto.signing import b64, unb64, verify_signature
from sealroom.errors import ContractError, SignatureError
from sealroom.files import read_capped
from sealroom.ledger import Ledger, LedgerView, Receipt
from sealroom.workspace import Workspace

DOMAIN = b"sealroom/model-statement/v1\n"
Action = Literal["provision", "rotate", "retire"]
KINDS: dict[str, str] = {
    "provision": "model.provisioned",
    "rotate": "model.rotated",
    "retire": "model.retired",
}
MAX_STATEMENT_BYTES = 1 << 16
MAX_CLOCK_SKEW_S = 300.0  # a statement issued further in the future than this is refused


class ProvisionError(ContractError):
    """A model statement is refused: wrong signer, wrong contract, stale, replayed, after retire."""


class ModelStatement(BaseModel):
    """The model owner's signed word on what a contract serves (see the module docstring).

    provision: ``package_digest`` is the contract's ``model.package_digest``; rotate: the new
    package and ``previous_digest``, the one it replaces (must be current); retire: the
    package being retired (must be current), after which nothing is served under the contract.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: str = Field(pattern=ID_PATTERN)
    contract_digest: str = Field(pattern=DIGEST_PATTERN)
    action: Action
    package_digest: str = Field(pattern=DIGEST_PATTERN)
    previous_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    issued_at: datetime
    statement_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    signer: str = Field(pattern=NAME_PATTERN)
    signature: str = ""  # base64 Ed25519 over signed_bytes()

    def signed_bytes(self) -> bytes:
        """The exact bytes the owner signs (domain prefix + canonical JSON, no signature)."""
        return DOMAIN + rfc8785.dumps(self.model_dump(mode="json", exclude={"signature"}))

    @property
    def kind(self) -> str:
        """The ledger kind this statement is recorded under."""
        return KINDS[self.action]


class ModelState(BaseModel):
    """What a contract serves now, by its owner's verified statements.

    ``digest`` None: never provisioned. ``seq``: the ledger entry of the last statement applied.
    """

    model_config = ConfigDict(frozen=True)

    digest: str | None = None
    retired: bool = False
    seq: int | None = None
    statement_ids: frozenset[str] = frozenset()

    @property
    def serving(self) -> str | None:
        """The package a room may serve now (None: nothing, never provisioned or retired)."""
        return None if self.retired else self.digest


def model_owner(contract: Contract) -> str:
    """The party that provisions the contract's model; ProvisionError for a training contract."""
    if contract.inference is None or contract.model is None:
        raise ProvisionError(
            f"contract {contract.id} is not an inference contract (it has no inference terms)"
        )
    return contract.model.owner


def check_owner(contract: Contract, name: str) -> None:
    """ProvisionError unless ``name`` is the contract's model owner."""
    owner = model_owner(contract)
    if name != owner:
        raise ProvisionError(
            f"refused: {name} is not the model owner of contract {contract.id} (owner: {owner})"
        )


def make_statement(
    contract: Contract,
    action: Action,
    package_digest: str,
    previous_digest: str | None,
    signer: str,
    sign: Callable[[bytes], bytes],
    now: datetime | None = None,
) -> ModelStatement:
    """A statement by ``signer`` signed with ``sign`` (fresh id, issued now)."""
    unsigned = ModelStatement(
        contract_id=contract.id,
        contract_digest=contract_digest(contract),
        action=action,
        package_digest=package_digest,
        previous_digest=previous_digest,
        issued_at=(now or datetime.now(UTC)).astimezone(UTC),
        statement_id=secrets.token_hex(16),
        signer=signer,
    )
    return unsigned.model_copy(update={"signature": b64(sign(unsigned.signed_bytes()))})


def verify_statement(statement: ModelStatement, contract: Contract) -> None:
    """ProvisionError unless the contract's model owner signed this statement for this contract.

    The key is the one the contract pins for the owner, never a workspace identity.
    """
    where = f"model {statement.action} statement {statement.statement_id}"
    if statement.contract_id != contract.id:
        raise ProvisionError(f"{where}: is for contract {statement.contract_id}, not {contract.id}")
    if statement.contract_digest != contract_digest(contract):
        raise ProvisionError(
            f"{where}: is for another version of contract {contract.id} "
            f"({statement.contract_digest})"
        )
    check_owner(contract, statement.signer)
    listed = contract.party(statement.signer)
    try:
        signature = unb64(statement.signature, f"{where} signature")
        verify_signature(listed.signing_key, signature, statement.signed_bytes(), statement.signer)
    except SignatureError:
        raise ProvisionError(
            f"{where}: the signature does not verify with the key contract {contract.id} "
            f"pins for its model owner {statement.signer}"
        ) from None


def apply_statement(state: ModelState, statement: ModelStatement, contract: Contract) -> ModelState:
    """The state after ``statement`` (already verified); ProvisionError if it may not follow."""
    cid = contract.id
    if statement.statement_id in state.statement_ids:
        raise ProvisionError(
            f"model statement {statement.statement_id} for contract {cid} was already "
            "recorded (replayed)"
        )
    if state.retired:
        raise ProvisionError(f"the model of contract {cid} is retired: nothing follows a retire")
    if statement.action == "provision":
        if state.digest is not None:
            raise ProvisionError(
                f"the model of contract {cid} is already provisioned ({state.digest}); "
                "use rotate to replace it"
            )
        assert contract.model is not None  # model_owner() checked it
        if statement.package_digest != contract.model.package_digest:
            raise ProvisionError(
                f"provision names {statement.package_digest}, but contract {cid} names model "
                f"{contract.model.package_digest} (provision it, then rotate)"
            )
        if statement.previous_digest is not None:
            raise ProvisionError("a provision statement names no previous digest")
    else:
        if state.digest is None:
            raise ProvisionError(f"the model of contract {cid} was never provisioned")
        if statement.action == "rotate":
            if statement.previous_digest != state.digest:
                raise ProvisionError(
                    f"rotate names previous model {statement.previous_digest}, but contract "
                    f"{cid} serves {state.digest} (stale statement)"
                )
            if statement.package_digest == state.digest:
                raise ProvisionError(f"rotate names the model contract {cid} already serves")
        else:
            if statement.previous_digest is not None:
                raise ProvisionError("a retire statement names no previous digest")
            if statement.package_digest != state.digest:
                raise ProvisionError(
                    f"retire names {statement.package_digest}, but contract {cid} serves "
                    f"{state.digest} (stale statement)"
                )
    return ModelState(
        digest=statement.package_digest,
        retired=statement.action == "retire",
        seq=state.seq,
        statement_ids=state.statement_ids | {statement.statement_id},
    )


def parse_statement(payload: object, where: str) -> ModelStatement:
    """A statement from a ledger payload or a file; ProvisionError naming ``where``."""
    try:
        return ModelStatement.model_validate(payload)
    except ValidationError as exc:
        raise ProvisionError(describe_validation(where, exc)) from None


def current_model(
    ledger: LedgerView,
    signed: SignedContract,
    skipped: list[str] | None = None,
    applied: list[tuple[int, ModelStatement]] | None = None,
) -> ModelState:
    """Replay the contract's model statements in ledger order; only verified ones count.

    Each ledger entry is checked (hash and ledger signature), then its statement (the owner's
    signature, this contract) and the transition it makes. Entries that fail are left out;
    their reasons go to ``skipped`` when given, so that a caller can report them, and the
    statements that count go to ``applied`` (ledger seq, statement).
    """
    contract = signed.contract
    model_owner(contract)
    entries = []
    for kind in KINDS.values():
        entries.extend(ledger.find(kind, contract_id=contract.id))
    state = ModelState()
    for entry in sorted(entries, key=lambda e: e.seq):
        try:
            statement = parse_statement(entry.payload, "payload")
            if KINDS[statement.action] != entry.kind:
                raise ProvisionError(f"a {entry.kind} entry holding a {statement.action} statement")
            verify_statement(statement, contract)
            state = apply_statement(state, statement, contract).model_copy(
                update={"seq": entry.seq}
            )
            if applied is not None:
                applied.append((entry.seq, statement))
        except ProvisionError as exc:
            if skipped is not None:
                skipped.append(f"ledger entry {entry.seq}: {exc}")
    return state


def record_statement(
    ledger: Ledger, signed: SignedContract, statement: ModelStatement, now: datetime | None = None
) -> tuple[ModelState, Receipt]:
    """Verify ``statement`` against the contract and the current state, then append it.

    The caller checks the contract itself (registered, in force, not revoked) and holds the
    contract's lock, so that two statements never race on one state.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    verify_statement(statement, signed.contract)
    if (statement.issued_at - moment).total_seconds() > MAX_CLOCK_SKEW_S:
        raise ProvisionError(
            f"model statement {statement.statement_id} is issued in the future "
            f"({statement.issued_at.isoformat()})"
        )
    state = apply_statement(current_model(ledger, signed), statement, signed.contract)
    receipt = ledger.append(statement.kind, statement.model_dump(mode="json"))
    return state.model_copy(update={"seq": receipt.seq}), receipt


def provision_model(
    ws: Workspace,
    contract_id: str,
    as_name: str,
    action: Action,
    package_digest: str | None = None,
    now: datetime | None = None,
) -> tuple[ModelStatement, ModelState, Receipt]:
    """Sign a statement as ``as_name`` (the model owner, with the keys the contract pins for it)
    and record it, under a verified contract (signed, registered, in force, not revoked).

    provision: ``package_digest`` defaults to the contract's model; rotate: required (the new
    package; the previous one is the current); retire: defaults to the current model.
    """
    _check_digest(package_digest)
    with contract_lock(ws, contract_id):
        signed = verify_contract(ws, contract_id, now)
        contract = signed.contract
        check_owner(contract, as_name)
        assert contract.model is not None  # check_owner: an inference contract names its model
        with Ledger.open(ws) as ledger:
            state = current_model(ledger, signed)
            if action != "provision" and state.digest is None:
                raise ProvisionError(f"the model of contract {contract_id} was never provisioned")
            previous = None
            if action == "provision":
                digest = package_digest or contract.model.package_digest
            elif action == "rotate":
                if package_digest is None:
                    raise ProvisionError("rotate needs the new model's package digest")
                digest, previous = package_digest, state.digest
            else:
                digest = package_digest or state.digest or ""
            sign = _owner_key(ws, contract, as_name)
            statement = make_statement(contract, action, digest, previous, as_name, sign, now)
            state, receipt = record_statement(ledger, signed, statement, now)
    return statement, state, receipt


def sign_statement(
    ws: Workspace,
    contract_id: str,
    as_name: str,
    action: Action,
    package_digest: str | None = None,
    previous_digest: str | None = None,
    now: datetime | None = None,
) -> ModelStatement:
    """Sign a statement without recording it, for a ledger in another workspace (the
    operator's, where the key service runs: ``import_statement`` there records it).

    The owner states the transition in full (rotate: ``previous_digest``), since its own
    ledger need not hold the earlier statements; the recording side checks it.
    """
    for digest in (package_digest, previous_digest):
        _check_digest(digest)
    signed = load_contract(ws, contract_id)
    signed.verify_signatures()
    signed.check_in_force(now)
    contract = signed.contract
    check_owner(contract, as_name)
    assert contract.model is not None  # check_owner: an inference contract names its model
    if action == "provision":
        package_digest = package_digest or contract.model.package_digest
    elif package_digest is None or (action == "rotate" and previous_digest is None):
        need = "--package and --previous" if action == "rotate" else "--package"
        raise ProvisionError(f"a {action} statement signed for another workspace needs {need}")
    sign = _owner_key(ws, contract, as_name)
    return make_statement(contract, action, package_digest, previous_digest, as_name, sign, now)


def import_statement(
    ws: Workspace, path: Path, now: datetime | None = None
) -> tuple[ModelStatement, ModelState, Receipt]:
    """Record a statement the owner signed elsewhere (``sign_statement``), once it verifies."""
    data = read_capped(path, MAX_STATEMENT_BYTES, "a model statement", ProvisionError)
    try:
        statement = ModelStatement.model_validate_json(data)
    except ValidationError as exc:
        raise ProvisionError(describe_validation(str(path), exc)) from None
    with contract_lock(ws, statement.contract_id):
        signed = verify_contract(ws, statement.contract_id, now)
        with Ledger.open(ws) as ledger:
            state, receipt = record_statement(ledger, signed, statement, now)
    return statement, state, receipt


def _check_digest(digest: str | None) -> None:
    if digest is not None and not re.match(DIGEST_PATTERN, digest):
        raise ProvisionError(f"{digest!r} is not a package digest (sha256:<64 hex>)")


def _owner_key(ws: Workspace, contract: Contract, name: str) -> Callable[[bytes], bytes]:
    """``name``'s signing function with the keys the contract pins (current or archived)."""
    listed = contract.party(name)
    party = load_party_with_keys(
        ws, name, fingerprint_of(listed.signing_key, listed.encryption_key)
    )
    return party.sign
