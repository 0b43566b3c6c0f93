"""Attesting from inside a confidential VM through Linux configfs-tsm (SEV-SNP and TDX).

The kernel ABI (Documentation/ABI/testing/configfs-tsm): ``mkdir`` a report entry under
``/sys/kernel/config/tsm/report``, write up to 64 bytes to ``inblob`` (SEV-SNP: the VMPL to
``privlevel`` first, where the provider shows it), read the signed report from ``outblob``,
the host's certificate table from ``auxblob`` (SEV-SNP only) and the format from
``provider``. ``generation`` counts writes to the entry: reading it before and after tells
whether another writer changed the request under us, in which case the report may answer
someone else's report data, so we refuse (no retry: the room retries at its own pace).
The entry is removed whatever happens.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from sealroom.attest.evidence import REPORT_DATA_SIZE, Evidence
from sealroom.attest.snp.report import REPORT_SIZE
from sealroom.attest.snp_certtable import certificates_pem
from sealroom.errors import AttestationError
from sealroom.workspace import Workspace

log = logging.getLogger("sealroom.attest")

TSM_REPORT_DIR = Path("/sys/kernel/config/tsm/report")
# configfs-tsm provider names -> sealroom TEE types; any other provider is refused.
PROVIDERS = {"sev_guest": "sev-snp", "tdx_guest": "tdx"}
PRIVLEVEL_MAX = 3  # TSM_REPORT_PRIVLEVEL_MAX: SEV-SNP VMPL 0..3
SNP_VMPL_OFFSET = 0x30
SNP_REPORT_DATA_OFFSET = 0x50
MAX_OUTBLOB = 1 << 16  # Evidence.payload's bound
MAX_AUXBLOB = 1 << 20
MAX_TEXT = 64  # generation, provider, privlevel_floor


def no_tsm_message(root: Path) -> str:
    return (
        f"no configfs-tsm at {root}: not a TEE guest (SEV-SNP or TDX), or configfs not mounted "
        "(mount -t configfs none /sys/kernel/config)"
    )


class ConfigfsOps:
    """The filesystem calls the attester makes; tests substitute a kernel emulator."""

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def exists(self, path: Path) -> bool:
        return path.exists()

    def mkdir(self, path: Path) -> None:
        os.mkdir(path, 0o700)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def read(self, path: Path, limit: int) -> bytes:
        with open(path, "rb") as file:
            return file.read(limit + 1)

    def write(self, path: Path, data: bytes) -> None:
        # One write(2) then close(2): configfs binary attributes commit on release,
        # so the kernel's refusal may only surface when the file is closed.
        fd = os.open(path, os.O_WRONLY)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):
            raise OSError(f"short write: {written} of {len(data)} bytes")


class ConfigfsTsmAttester:
    """Asks the kernel for a SEV-SNP report or a TDX quote binding ``report_data``.

    ``privlevel`` (SEV-SNP VMPL, 0..3) is written when the provider shows ``privlevel``;
    None asks for the guest's own level (``privlevel_floor``). ``ws``, when given, lets a
    TDX quote carry the collateral the workspace caches for its FMSPC.
    """

    def __init__(
        self,
        root: Path = TSM_REPORT_DIR,
        *,
        ws: Workspace | None = None,
        privlevel: int | None = None,
        fs: ConfigfsOps | None = None,
    ) -> None:
        self.fs = fs or ConfigfsOps()
        self.root = root
        self.ws = ws
        if privlevel is not None and not 0 <= privlevel <= PRIVLEVEL_MAX:
            raise AttestationError(
                f"configfs-tsm privlevel {privlevel} is out of range 0..{PRIVLEVEL_MAX}"
            )
        self.privlevel = privlevel
        if not self.fs.is_dir(root):
            raise AttestationError(no_tsm_message(root))
        self.tee_type = "configfs-tsm"  # the provider's TEE type after the first report

    # ------------------------------------------------------------------ attributes

    def _read(self, path: Path, limit: int) -> bytes:
        try:
            data = self.fs.read(path, limit)
        except OSError as exc:
            raise AttestationError(f"configfs-tsm: cannot read {path}: {exc}") from None
        if len(data) > limit:
            raise AttestationError(f"configfs-tsm: {path} holds more than {limit} bytes")
        return data

    def _text(self, path: Path) -> str:
        raw = self._read(path, MAX_TEXT)
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise AttestationError(f"configfs-tsm: {path} is not ASCII text") from None

    def _number(self, path: Path) -> int:
        text = self._text(path)
        if not text.isdigit() or not text.isascii():
            raise AttestationError(f"configfs-tsm: {path} holds {text[:20]!r}, not a number")
        return int(text)

    def _write(self, path: Path, data: bytes) -> None:
        try:
            self.fs.write(path, data)
        except OSError as exc:
            raise AttestationError(f"configfs-tsm: cannot write {path}: {exc}") from None

    # ------------------------------------------------------------------ the report

    def attest(self, report_data: bytes) -> Evidence:
        if len(report_data) != REPORT_DATA_SIZE:
            raise AttestationError(
                f"report data must be {REPORT_DATA_SIZE} bytes, got {len(report_data)}"
            )
        entry = self.root / f"sealroom-{secrets.token_hex(8)}"
        try:
            self.fs.mkdir(entry)
        except OSError as exc:
            raise AttestationError(f"configfs-tsm: cannot create {entry}: {exc}") from None
        try:
            evidence = self._report(entry, report_data)
        finally:
            try:
                self.fs.rmdir(entry)
            except OSError as exc:
                log.warning("configfs-tsm: could not remove %s: %s", entry, exc)
        self.tee_type = evidence.tee_type
        return evidence

    def _report(self, entry: Path, report_data: bytes) -> Evidence:
        before = self._number(entry / "generation")
        writes = 0
        level = None
        if self.fs.exists(entry / "privlevel_floor"):
            floor = self._number(entry / "privlevel_floor")
            level = floor if self.privlevel is None else self.privlevel
            if not floor <= level <= PRIVLEVEL_MAX:
                raise AttestationError(
                    f"configfs-tsm privlevel {level} is below this guest's privlevel_floor "
                    f"{floor} ({entry})"
                )
            self._write(entry / "privlevel", f"{level}\n".encode("ascii"))
            writes += 1
        elif self.privlevel is not None:
            raise AttestationError(
                f"configfs-tsm privlevel {self.privlevel} asked for, but the provider at "
                f"{entry} has no privilege levels (TDX?)"
            )
        self._write(entry / "inblob", report_data)
        writes += 1
        outblob = self._read(entry / "outblob", MAX_OUTBLOB)
        aux = entry / "auxblob"
        auxblob = self._read(aux, MAX_AUXBLOB) if self.fs.exists(aux) else b""
        provider = self._text(entry / "provider")
        after = self._number(entry / "generation")
        if after != before + writes:
            raise AttestationError(
                f"configfs-tsm: {entry} generation went {before} -> {after}, expected "
                f"{before + writes}: another writer changed the request; report discarded"
            )
        if provider not in PROVIDERS:
            known = ", ".join(f"{name} ({tee})" for name, tee in PROVIDERS.items())
            raise AttestationError(
                f"configfs-tsm provider {provider[:40]!r} at {entry} is not one sealroom "
                f"knows ({known})"
            )
        if not outblob:
            raise AttestationError(f"configfs-tsm: {entry / 'outblob'} is empty")
        if PROVIDERS[provider] == "sev-snp":
            return self._snp(outblob, auxblob, report_data, level)
        return self._tdx(outblob)

    def _snp(self, report: bytes, auxblob: bytes, report_data: bytes, vmpl: int | None) -> Evidence:
        # Cheap sanity checks only (the verifier checks everything, signature first):
        # a stale or foreign report fails here with a clearer message.
        if len(report) != REPORT_SIZE:
            raise AttestationError(
                f"SEV-SNP report from configfs-tsm has {len(report)} bytes, expected {REPORT_SIZE}"
            )
        bound = report[SNP_REPORT_DATA_OFFSET : SNP_REPORT_DATA_OFFSET + REPORT_DATA_SIZE]
        if bound != report_data:
            raise AttestationError("SEV-SNP report from configfs-tsm binds other report data")
        reported = int.from_bytes(report[SNP_VMPL_OFFSET : SNP_VMPL_OFFSET + 4], "little")
        if vmpl is not None and reported != vmpl:
            raise AttestationError(
                f"SEV-SNP report from configfs-tsm is for VMPL {reported}, asked for {vmpl}"
            )
        return Evidence(tee_type="sev-snp", payload=report, certificates=certificates_pem(auxblob))

    def _tdx(self, quote: bytes) -> Evidence:
        return Evidence(tee_type="tdx", payload=quote, collateral=self._tdx_collateral(quote))

    def _tdx_collateral(self, quote: bytes) -> str:
        """The workspace's cached collateral for the quote's FMSPC, or "" (optional)."""
        if self.ws is None:
            return ""
        import dcap_qvl

        from sealroom.attest.collateral import tdx_collateral
        from sealroom.attest.tdx_quote import quote_fmspc

        try:
            parsed = dcap_qvl.parse_quote(quote)
        except ValueError as exc:
            raise AttestationError(f"TDX quote from configfs-tsm does not parse: {exc}") from None
        return tdx_collateral(self.ws, quote_fmspc(parsed)) or ""


def tsm_available(root: Path = TSM_REPORT_DIR) -> bool:
    """Whether this machine offers configfs-tsm reports (a SEV-SNP or TDX guest)."""
    return root.is_dir()
