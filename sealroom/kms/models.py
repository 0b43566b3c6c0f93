"""Typed messages of the key service: release policies, requests, stored key records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from sealroom.attest.evidence import Evidence
from sealroom.attest.policy import HardwarePolicy, SnpPolicy, TdxPolicy
from sealroom.contract.pipeline_signature import PipelineSignature

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
HARDWARE_TEE_TYPES = ["sev-snp", "tdx"]
INSECURE_TEE_TYPE = "software"


class ReleasePolicy(BaseModel):
    """The key owner's terms: which contract, which rooms (measurement, TEE), until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: str = Field(min_length=1)
    package_digest: str = Field(pattern=DIGEST_PATTERN)
    measurements: list[str] = Field(min_length=1)
    tee_types: list[str] = Field(default_factory=lambda: list(HARDWARE_TEE_TYPES))
    allow_insecure: bool = False
    expires: datetime | None = None
    # Hardware terms beyond the measurement (TCB floor, VMPL, host data, RTMRs, TDX status).
    # Records and grants made before these existed load with the defaults.
    snp: SnpPolicy = Field(default_factory=SnpPolicy)
    tdx: TdxPolicy = Field(default_factory=TdxPolicy)

    @field_validator("measurements")
    @classmethod
    def _hex(cls, values: list[str]) -> list[str]:
        for value in values:
            if len(value) < 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
                raise ValueError(f"measurement {value!r} is not a hex digest")
        return [v.lower() for v in values]

    @field_validator("expires")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires needs a timezone")
        return value

    @model_validator(mode="after")
    def _insecure_is_explicit(self) -> ReleasePolicy:
        # The software attester is only ever allowed through the explicit flag.
        if self.allow_insecure and INSECURE_TEE_TYPE not in self.tee_types:
            object.__setattr__(self, "tee_types", [*self.tee_types, INSECURE_TEE_TYPE])
        if not self.allow_insecure and INSECURE_TEE_TYPE in self.tee_types:
            raise ValueError("tee type 'software' is insecure: set allow_insecure to allow it")
        return self

    @model_serializer(mode="wrap")
    def _omit_default_terms(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        # A grant's signature covers the policy's JSON: leaving out hardware terms that are
        # at their defaults keeps grants signed before the terms existed verifiable.
        data: dict[str, Any] = handler(self)
        for name, default in (("snp", SnpPolicy()), ("tdx", TdxPolicy())):
            if getattr(self, name) == default:
                data.pop(name, None)
        return data

    def hardware_policy(self) -> HardwarePolicy:
        """The terms :func:`check_hardware_policy` applies to SEV-SNP and TDX claims."""
        return HardwarePolicy(measurements=self.measurements, snp=self.snp, tdx=self.tdx)


class ReleaseRequest(BaseModel):
    """What a room sends to get one package's data key.

    ``pipeline`` is the whole pipeline document so the service can recompute its digest and
    evaluate the contract policy on it itself rather than trust the room's word;
    ``pipeline_signature`` is the consumer's signature on it, so that the operator cannot
    substitute a pipeline. ``run_id`` names the run the key is for (a contract's
    ``max_runs`` counts distinct runs); a request without one counts as a run of its own.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    evidence: Evidence
    nonce: bytes = Field(min_length=16, max_length=64)
    ephemeral_public_key: str  # base64 raw X25519
    contract_id: str
    pipeline_digest: str
    package_digest: str
    pipeline: dict[str, Any] | None = None
    pipeline_signature: PipelineSignature | None = None
    run_id: str | None = Field(default=None, pattern=RUN_ID_PATTERN)


class ModelReleaseRequest(BaseModel):
    """What a serving room sends to get the model key of an inference contract.

    Same nonce and evidence binding as a training release (report_data =
    ``make_report_data(nonce, ephemeral_public_key)``); no pipeline, since nothing trains:
    the key service instead checks that ``package_digest`` is the model the contract's owner
    provisioned (and has not rotated away or retired). ``instance`` names the serving
    instance in the ledger.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    evidence: Evidence
    nonce: bytes = Field(min_length=16, max_length=64)
    ephemeral_public_key: str  # base64 raw X25519
    contract_id: str = Field(min_length=1, max_length=200)
    package_digest: str = Field(pattern=DIGEST_PATTERN)
    instance: str = Field(pattern=RUN_ID_PATTERN)


class KeyRecord(BaseModel):
    """One imported data key (wrapped under the root key) and its release policy."""

    model_config = ConfigDict(frozen=True)

    package_digest: str
    contract_id: str
    owner: str
    policy: ReleasePolicy
    wrapped_key: bytes
    imported_at: datetime


def release_info(package_digest: str) -> bytes:
    """HPKE ``info`` of a released key: binds the sealed key to the package it opens."""
    return b"sealroom key release" + package_digest.encode("ascii")


class BudgetReserve(BaseModel):
    """``POST /v1/budget/reserve``: reserve (ε, δ) for one run on the contract's private
    datasets whose key this key service holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=RUN_ID_PATTERN)
    contract_id: str = Field(min_length=1, max_length=200)
    epsilon: float = Field(ge=0, allow_inf_nan=False)
    delta: float = Field(ge=0, lt=1, allow_inf_nan=False)


class BudgetSettle(BaseModel):
    """``POST /v1/budget/settle``: the run's spent ε (charged in full once a key was released:
    the key service cannot know what the run spent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=RUN_ID_PATTERN)
    contract_id: str = Field(min_length=1, max_length=200)
    spent_epsilon: float = Field(ge=0, allow_inf_nan=False)
