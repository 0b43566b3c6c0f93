"""What a key owner requires of hardware evidence beyond a valid signature.

A verifier proves that a genuine AMD or Intel part signed a report; this module decides
whether that report describes a room the owner trusts: the allowed launch measurements,
the firmware TCB floor, the VM privilege level, the host-supplied data, TDX's runtime
registers and TCB status. It runs on normalised :class:`Claims`, so one policy serves the
key service, the inference client and ``sealroom attest verify`` alike.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sealroom.attest.evidence import Claims
from sealroom.errors import AttestationError

SNP_FAMILIES = ("Milan", "Genoa", "Turin")
SNP_TCB_COMPONENTS = ("bootloader", "tee", "snp", "microcode", "fmc")
# dcap-qvl's TCB statuses, best first. "OutOfDate" and "Revoked" are never accepted.
TDX_ACCEPTABLE_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hex_of(value: str, size: int, what: str) -> str:
    if len(value) != 2 * size or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValueError(f"{what} must be {size} bytes of hex ({2 * size} characters)")
    return value.lower()


class SnpPolicy(_Strict):
    """SEV-SNP terms. Defaults: VMPL 0 only, any family, VCEK or VLEK, no TCB floor."""

    min_tcb: dict[str, int] = Field(default_factory=dict)  # component -> lowest SVN allowed
    max_vmpl: int = Field(default=0, ge=0, le=3)
    host_data: str | None = None  # hex, 32 bytes: exactly this value, or any when None
    families: list[str] = Field(default_factory=lambda: list(SNP_FAMILIES), min_length=1)
    signing_keys: list[str] = Field(default_factory=lambda: ["vcek", "vlek"], min_length=1)

    @field_validator("min_tcb")
    @classmethod
    def _components(cls, value: dict[str, int]) -> dict[str, int]:
        for name, svn in value.items():
            if name not in SNP_TCB_COMPONENTS:
                raise ValueError(
                    f"unknown TCB component {name!r} (known: {', '.join(SNP_TCB_COMPONENTS)})"
                )
            if not 0 <= svn <= 255:
                raise ValueError(f"TCB component {name} must be 0..255, got {svn}")
        return value

    @field_validator("host_data")
    @classmethod
    def _host_data(cls, value: str | None) -> str | None:
        return None if value is None else _hex_of(value, 32, "host_data")

    @field_validator("families")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in SNP_FAMILIES:
                raise ValueError(f"unknown SEV-SNP family {name!r} (known: Milan, Genoa, Turin)")
        return value

    @field_validator("signing_keys")
    @classmethod
    def _signing_keys(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in ("vcek", "vlek"):
                raise ValueError(f"unknown SEV-SNP signing key {name!r} (known: vcek, vlek)")
        return value


class TdxPolicy(_Strict):
    """TDX terms. MRTD is the measurement; RTMRs pin what the firmware and kernel loaded."""

    rtmrs: list[str | None] = Field(default_factory=list, max_length=4)  # None: any value
    tcb_statuses: list[str] = Field(default_factory=lambda: ["UpToDate"], min_length=1)
    allowed_advisories: list[str] = Field(default_factory=list)

    @field_validator("rtmrs")
    @classmethod
    def _rtmrs(cls, value: list[str | None]) -> list[str | None]:
        return [None if v is None else _hex_of(v, 48, f"rtmr{i}") for i, v in enumerate(value)]

    @field_validator("tcb_statuses")
    @classmethod
    def _statuses(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in TDX_ACCEPTABLE_STATUSES:
                raise ValueError(
                    f"TCB status {name!r} cannot be allowed "
                    f"(allowed ones: {', '.join(TDX_ACCEPTABLE_STATUSES)})"
                )
        return value


class HardwarePolicy(_Strict):
    """Everything a hardware room must satisfy; ``measurements`` is the release policy's list."""

    measurements: list[str] = Field(min_length=1)
    snp: SnpPolicy = Field(default_factory=SnpPolicy)
    tdx: TdxPolicy = Field(default_factory=TdxPolicy)

    @field_validator("measurements")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.lower() for v in value]


def check_hardware_policy(claims: Claims, policy: HardwarePolicy) -> None:
    """AttestationError naming the first term the (already verified) claims break."""
    if claims.insecure:
        raise AttestationError("insecure evidence is judged by allow_insecure, not a TEE policy")
    if claims.debug:
        raise AttestationError(
            f"the {claims.tee_type} guest allows debugging, so the host can read its memory"
        )
    if claims.measurement not in policy.measurements:
        raise AttestationError(f"measurement {claims.measurement} is not one the policy allows")
    if claims.tee_type == "sev-snp":
        _check_snp(claims, policy.snp)
    elif claims.tee_type == "tdx":
        _check_tdx(claims, policy.tdx)
    else:
        raise AttestationError(f"no hardware policy for TEE type {claims.tee_type!r}")


def _check_snp(claims: Claims, policy: SnpPolicy) -> None:
    if claims.platform not in policy.families:
        raise AttestationError(
            f"SEV-SNP family {claims.platform or 'unknown'} is not allowed "
            f"(allowed: {', '.join(policy.families)})"
        )
    if claims.signing_key not in policy.signing_keys:
        raise AttestationError(
            f"the report is signed by a {claims.signing_key or 'unknown'} key; the policy "
            f"allows {', '.join(policy.signing_keys)}"
        )
    if claims.vmpl is None or claims.vmpl > policy.max_vmpl:
        raise AttestationError(
            f"the report was requested at VMPL {claims.vmpl}; the policy allows VMPL "
            f"{policy.max_vmpl} or lower"
        )
    for component, floor in policy.min_tcb.items():
        reported = claims.tcb.get(component)
        if reported is None or reported < floor:
            raise AttestationError(
                f"TCB component {component} is {reported} in the report, below the minimum {floor}"
            )
    if policy.host_data is not None and claims.host_data != policy.host_data:
        raise AttestationError(
            f"host_data {claims.host_data or '(none)'} is not the {policy.host_data} the policy "
            "requires"
        )


def _check_tdx(claims: Claims, policy: TdxPolicy) -> None:
    if claims.tcb_status not in policy.tcb_statuses:
        raise AttestationError(
            f"the platform's TCB status is {claims.tcb_status or 'unknown'}; the policy allows "
            f"{', '.join(policy.tcb_statuses)}"
        )
    unexpected = sorted(set(claims.advisory_ids) - set(policy.allowed_advisories))
    if unexpected:
        raise AttestationError(
            f"Intel advisories {', '.join(unexpected)} apply to this platform and the policy "
            "does not accept them"
        )
    for index, wanted in enumerate(policy.rtmrs):
        if wanted is None:
            continue
        actual = claims.rtmrs[index] if index < len(claims.rtmrs) else ""
        if actual != wanted:
            raise AttestationError(f"RTMR{index} is {actual or '(missing)'}, not {wanted}")
