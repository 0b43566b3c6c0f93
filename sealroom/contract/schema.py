"""The contract every party signs: who takes part, which data and model, and what a run may do.

Validated at the edge (``extra="forbid"`` everywhere) so that inner code — the key service,
the policy check, the room — reads typed fields and never re-checks dicts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from sealroom.contract.inference import InferenceTerms
from sealroom.crypto.signing import raw_public_key

Role = Literal["provider", "consumer", "operator", "service"]

# Contract ids become file names in the workspace, so they are kept to a safe alphabet.
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields added after contracts were first signed. Every dump leaves them out while they
    # hold their default, so the canonical bytes (and so the signatures and digests) of a
    # contract that does not use them are what they were before the field existed.
    _added_fields: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unused_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self._added_fields:
                default = type(self).model_fields[name].get_default(call_default_factory=True)
                if name in data and getattr(self, name) == default:
                    del data[name]
        return data


def _optional_raw_key(value: str | None) -> str | None:
    return None if value is None else raw_public_key(value)


class PartyRef(_Strict):
    """A party as the contract pins it: its name, role and public keys at signing time."""

    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    signing_key: str
    encryption_key: str

    _keys = field_validator("signing_key", "encryption_key")(raw_public_key)


class DatasetPrivacy(_Strict):
    """Differential-privacy terms for one dataset: per run and over the contract's lifetime."""

    per_run_epsilon: float = Field(gt=0)
    per_run_delta: float = Field(ge=0, lt=1)
    total_epsilon: float = Field(gt=0)
    total_delta: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _per_run_within_total(self) -> DatasetPrivacy:
        if self.per_run_epsilon > self.total_epsilon:
            raise ValueError("per_run_epsilon exceeds total_epsilon")
        if self.per_run_delta > self.total_delta:
            raise ValueError("per_run_delta exceeds total_delta")
        return self


class DatasetRef(_Strict):
    """A sealed dataset, named by the digest of its signed manifest."""

    id: str = Field(pattern=ID_PATTERN)
    provider: str
    package_digest: str = Field(pattern=DIGEST_PATTERN)
    privacy: DatasetPrivacy | None = None
    # The provider's own key service (``kms serve``) that holds this dataset's key; None: the
    # operator's embedded one, which gives no protection from the operator.
    key_service: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    # The digest of the provider's signed dataset declaration (`sealroom dataset declare`):
    # which records train and which are held out. Required of every dataset a run uses
    # under a contract with privacy terms; the room splits by it, never by the pipeline.
    declaration_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)

    _added_fields: ClassVar[frozenset[str]] = frozenset({"key_service", "declaration_digest"})


class ModelRef(_Strict):
    """The base model, sealed by its owner like any dataset."""

    owner: str
    package_digest: str = Field(pattern=DIGEST_PATTERN)


class RoomLimits(_Strict):
    """Kernel limits (rlimits) on the room process, enforced by its sandbox."""

    memory_mb: int = Field(default=16384, ge=256)  # RLIMIT_DATA: heap and anonymous maps
    file_mb: int = Field(default=4096, ge=1)  # RLIMIT_FSIZE: the largest file it may write
    open_files: int = Field(default=1024, ge=64)
    processes: int | None = Field(default=None, ge=1)  # RLIMIT_NPROC (per user; not for root)


class Constraints(_Strict):
    """What a pipeline run under this contract may use and release."""

    model_formats: list[str] = Field(min_length=1)
    optimizers: list[str] = Field(min_length=1)
    losses: list[str] = Field(min_length=1)
    metrics: list[str] = Field(min_length=1)
    max_epochs: int = Field(gt=0)
    released_outputs: list[str] = Field(min_length=1)
    require_privacy: bool = False
    max_runtime_s: int = Field(default=3600, gt=0)
    # Pins (optional): the one pipeline that may run (its `sealroom pipeline compose` digest)
    # and how many runs may open each package, counted by the key service.
    pipeline_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    max_runs: int | None = Field(default=None, gt=0)
    # Metrics whose values the public run record may carry; every other released metric
    # reaches only the consumer, sealed (the record carries the digest of metrics.json).
    public_metrics: list[str] = Field(default_factory=list)
    # A failed run's exception text, sealed to the consumer (never to the operator or the
    # ledger); refused together with privacy terms, since a message may quote a record.
    failure_details: bool = False
    room_limits: RoomLimits = Field(default_factory=RoomLimits)

    _added_fields: ClassVar[frozenset[str]] = frozenset(
        {"pipeline_digest", "max_runs", "public_metrics", "failure_details", "room_limits"}
    )

    @model_validator(mode="after")
    def _public_within_released(self) -> Constraints:
        extra = sorted(set(self.public_metrics) - set(self.metrics))
        if extra:
            raise ValueError(f"public_metrics {extra[0]!r} is not one of the contract's metrics")
        return self


class RoomPolicy(_Strict):
    """Which clean rooms may receive keys: runtime measurements and TEE types."""

    measurements: list[str] = Field(default_factory=list)
    allow_insecure: bool = False
    tee_types: list[str] = Field(default_factory=list)

    @field_validator("measurements")
    @classmethod
    def _hex(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _HEX.match(value):
                raise ValueError(f"measurement {value!r} is not hex")
        return [v.lower() for v in values]


# The constraints an inference contract gets when it leaves them out: no training run is
# allowed under it anyway (the key service refuses a pipeline under inference terms).
SERVING_ONLY: dict[str, Any] = {
    "model_formats": ["onnx"],
    "optimizers": ["none"],
    "losses": ["none"],
    "metrics": ["none"],
    "max_epochs": 1,
    "released_outputs": ["none"],
}


class Contract(_Strict):
    """A clean-room contract. Its RFC 8785 canonical JSON is what every party signs."""

    _added_fields: ClassVar[frozenset[str]] = frozenset({"ledger_public_key", "inference"})

    id: str = Field(pattern=ID_PATTERN)
    version: Literal[1] = 1
    purpose: str = Field(min_length=1)
    parties: list[PartyRef] = Field(min_length=1)
    datasets: list[DatasetRef] = Field(default_factory=list)
    model: ModelRef | None = None
    consumer: str
    constraints: Constraints
    room: RoomPolicy = Field(default_factory=RoomPolicy)
    policy_rego: str | None = None
    not_before: datetime
    expires: datetime
    # The ledger that registers this contract and records its runs (Ed25519, base64), pinned
    # so that anyone holding the contract knows which key a receipt must verify with.
    # Filled in by `contract propose` from the proposer's ledger when the draft leaves it out.
    ledger_public_key: str | None = None
    # Set: an inference contract (sealroom serve). It names a model and no dataset, and no
    # training pipeline runs under it; its constraints may be left out (SERVING_ONLY).
    inference: InferenceTerms | None = None

    _ledger_key = field_validator("ledger_public_key")(_optional_raw_key)

    @field_validator("not_before", "expires")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a timezone (e.g. 2026-01-01T00:00:00Z)")
        return value.astimezone(UTC)

    @model_validator(mode="before")
    @classmethod
    def _serving_constraints(cls, data: Any) -> Any:
        """An inference contract may leave out the training constraints: none apply."""
        if isinstance(data, dict) and data.get("inference") and "constraints" not in data:
            return {**data, "constraints": SERVING_ONLY}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        roles: dict[str, str] = {}
        for party in self.parties:
            if party.name in roles:
                raise ValueError(f"party {party.name!r} is listed twice")
            roles[party.name] = party.role

        def need(name: str, what: str, role: str | None = None) -> None:
            if name not in roles:
                raise ValueError(f"{what} {name!r} is not one of the parties")
            if role is not None and roles[name] != role:
                raise ValueError(f"{what} {name!r} has role {roles[name]!r}, expected {role!r}")

        need(self.consumer, "consumer", "consumer")
        seen: set[str] = set()
        for dataset in self.datasets:
            if dataset.id in seen:
                raise ValueError(f"dataset {dataset.id!r} is listed twice")
            seen.add(dataset.id)
            need(dataset.provider, f"provider of dataset {dataset.id!r}", "provider")
            if self.constraints.require_privacy and dataset.privacy is None:
                raise ValueError(
                    f"dataset {dataset.id!r} has no privacy terms but require_privacy is set"
                )
        if self.constraints.failure_details and (
            self.constraints.require_privacy or any(d.privacy for d in self.datasets)
        ):
            raise ValueError(
                "constraints.failure_details cannot be set on a contract with privacy terms "
                "(an error message may quote a record)"
            )
        if self.model is not None:
            need(self.model.owner, "model owner")
        if self.expires <= self.not_before:
            raise ValueError("expires must be after not_before")
        if self.inference is not None:
            if self.model is None:
                raise ValueError("an inference contract names the model it serves (model:)")
            if self.datasets:
                raise ValueError("an inference contract names no dataset (it trains nothing)")
        return self

    def party(self, name: str) -> PartyRef:
        """The party called ``name``; KeyError if it is not in the contract."""
        for party in self.parties:
            if party.name == name:
                return party
        raise KeyError(name)

    @property
    def private(self) -> bool:
        """Whether any dataset carries privacy terms (or the contract requires privacy)."""
        return self.constraints.require_privacy or any(d.privacy for d in self.datasets)

    def dataset(self, dataset_id: str) -> DatasetRef:
        """The dataset with this id; KeyError if it is not in the contract."""
        for dataset in self.datasets:
            if dataset.id == dataset_id:
                return dataset
        raise KeyError(dataset_id)
