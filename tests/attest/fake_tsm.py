"""A fake configfs-tsm kernel over a real temporary folder, for the attester's tests.

Plain files cannot make ``outblob`` appear when ``inblob`` is written, so the kernel's side
effects run in the attester's filesystem layer (:class:`ConfigfsOps`): ``mkdir`` fills the
new entry with the attributes the provider shows, a write to ``inblob``/``privlevel``
bumps ``generation`` and (re)generates ``outblob``/``auxblob``, ``rmdir`` drops the
attribute files as configfs does. Reads are real reads of those files.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from sealroom.attest.snp.report import REPORT_SIZE
from sealroom.attest.tsm import PRIVLEVEL_MAX, ConfigfsOps

SNP = "sev_guest"
TDX = "tdx_guest"


def fake_snp_report(report_data: bytes, vmpl: int) -> bytes:
    """1184 bytes shaped like a SEV-SNP report (unsigned): VMPL at 0x30, report data at 0x50."""
    report = bytearray(REPORT_SIZE)
    report[0:4] = (2).to_bytes(4, "little")
    report[0x30:0x34] = vmpl.to_bytes(4, "little")
    report[0x50:0x90] = report_data
    return bytes(report)


class FakeTsmKernel(ConfigfsOps):
    """Emulates one provider (``sev_guest``, ``tdx_guest`` or any name) under ``root``."""

    def __init__(
        self,
        root: Path,
        provider: str = SNP,
        *,
        floor: int = 0,
        auxblob: bytes = b"",
        quote: bytes = b"",
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.provider = provider
        self.floor = floor
        self.auxblob = auxblob
        self.quote = quote
        self.privlevels = provider == SNP  # TDX hides privlevel and privlevel_floor
        self.entries_made: list[Path] = []
        self.requests: list[tuple[bytes, int]] = []  # (inblob, privlevel) per report made
        self.intruder: Callable[[FakeTsmKernel, Path], None] | None = None
        self.report: Callable[[bytes, int], bytes] = fake_snp_report

    # ------------------------------------------------------------------ the kernel's side

    def mkdir(self, path: Path) -> None:
        super().mkdir(path)
        self.entries_made.append(path)
        (path / "generation").write_text("0\n")
        (path / "provider").write_text(f"{self.provider}\n")
        (path / "inblob").write_bytes(b"")
        if self.privlevels:
            (path / "privlevel").write_bytes(b"")
            (path / "privlevel_floor").write_text(f"{self.floor}\n")
            (path / "auxblob").write_bytes(b"")

    def write(self, path: Path, data: bytes) -> None:
        entry = path.parent
        if path.name == "privlevel":
            level = int(data.decode("ascii"))
            if not self.floor <= level <= PRIVLEVEL_MAX:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        elif path.name != "inblob":
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        super().write(path, data)
        generation = int((entry / "generation").read_text()) + 1
        (entry / "generation").write_text(f"{generation}\n")
        if path.name == "inblob":
            self._generate(entry)

    def _generate(self, entry: Path) -> None:
        inblob = (entry / "inblob").read_bytes()
        privlevel = entry / "privlevel"
        level = int(privlevel.read_text() or "0") if privlevel.exists() else 0
        self.requests.append((inblob, level))
        outblob = self.report(inblob, level) if self.provider == SNP else self.quote
        (entry / "outblob").write_bytes(outblob)
        if self.privlevels:
            (entry / "auxblob").write_bytes(self.auxblob)

    def read(self, path: Path, limit: int) -> bytes:
        if path.name == "outblob" and self.intruder is not None:
            intruder, self.intruder = self.intruder, None
            intruder(self, path.parent)
        return super().read(path, limit)

    def rmdir(self, path: Path) -> None:
        for child in path.iterdir():
            child.unlink()
        super().rmdir(path)


def rewrite_inblob(kernel: FakeTsmKernel, entry: Path) -> None:
    """Another process writes its own report data into our entry between our write and read."""
    kernel.write(entry / "inblob", b"\xee" * 64)
