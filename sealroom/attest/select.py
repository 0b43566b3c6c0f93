"""Which attester a room uses: an explicit setting, never a guess.

``SEALROOM_ATTESTER`` names it: ``software`` (the default: today's INSECURE attester),
``configfs-tsm`` (a SEV-SNP or TDX guest; refuses where configfs-tsm is absent) or
``auto`` (configfs-tsm where present, else software, logged as INSECURE).
``SEALROOM_TSM_PRIVLEVEL`` optionally names the SEV-SNP VMPL (0..3) to ask for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from sealroom.attest.evidence import Attester
from sealroom.attest.software import INSECURE_LABEL, SoftwareAttester
from sealroom.attest.tsm import TSM_REPORT_DIR, ConfigfsTsmAttester, tsm_available
from sealroom.errors import AttestationError
from sealroom.pipeline.registry import Registry
from sealroom.workspace import Workspace

log = logging.getLogger("sealroom.attest")

ENV_ATTESTER = "SEALROOM_ATTESTER"
ENV_PRIVLEVEL = "SEALROOM_TSM_PRIVLEVEL"
DEFAULT = "software"

ATTESTERS: Registry[Callable[[Workspace, Path], Attester]] = Registry("attester")


def _privlevel() -> int | None:
    text = os.environ.get(ENV_PRIVLEVEL, "").strip()
    if not text:
        return None
    if not text.isdigit() or not text.isascii():
        raise AttestationError(f"{ENV_PRIVLEVEL}={text[:20]!r} is not a VMPL (0..3)")
    return int(text)


@ATTESTERS.register("software")
def _software(ws: Workspace, root: Path) -> Attester:
    return SoftwareAttester(ws)


@ATTESTERS.register("configfs-tsm")
def _configfs_tsm(ws: Workspace, root: Path) -> Attester:
    return ConfigfsTsmAttester(root, ws=ws, privlevel=_privlevel())


@ATTESTERS.register("auto")
def _auto(ws: Workspace, root: Path) -> Attester:
    if tsm_available(root):
        return _configfs_tsm(ws, root)
    log.warning(
        "%s=auto: no configfs-tsm at %s; falling back to %s",
        ENV_ATTESTER,
        root,
        INSECURE_LABEL,
    )
    return _software(ws, root)


def room_attester(
    ws: Workspace, kind: str | None = None, *, root: Path = TSM_REPORT_DIR
) -> Attester:
    """The attester named by ``kind``, else by ``SEALROOM_ATTESTER``, else software.

    An unknown name is a ConfigError naming the setting and the known names; ``root`` is
    where configfs-tsm reports live (tests point it at a fake tree).
    """
    name = kind if kind is not None else os.environ.get(ENV_ATTESTER, "").strip() or DEFAULT
    where = "attester" if kind is not None else ENV_ATTESTER
    return ATTESTERS.get(name, where)(ws, root)
