"""Contracts: what the parties agreed, signed by all of them and registered in the ledger."""

from sealroom.contract.canonical import canonical_bytes, contract_digest
from sealroom.contract.loading import load_contract_file
from sealroom.contract.schema import (
    Constraints,
    Contract,
    DatasetPrivacy,
    DatasetRef,
    ModelRef,
    PartyRef,
    RoomPolicy,
)
from sealroom.contract.signed import REGISTERED, SignedContract
from sealroom.contract.store import list_contracts, load_contract, verify_contract
from sealroom.contract.workflow import import_contract, propose_contract, register, sign_contract

__all__ = [
    "REGISTERED",
    "Constraints",
    "Contract",
    "DatasetPrivacy",
    "DatasetRef",
    "ModelRef",
    "PartyRef",
    "RoomPolicy",
    "SignedContract",
    "canonical_bytes",
    "contract_digest",
    "import_contract",
    "list_contracts",
    "load_contract",
    "load_contract_file",
    "propose_contract",
    "register",
    "sign_contract",
    "verify_contract",
]
