"""Failure text that carries nothing private: a fixed category per stage and a class name.

Before the room holds any released key, its inputs are public (contract, pipeline, policy,
attestation), so sealroom's own one-line refusals are shown as they are. From the first
released key on, any message may quote data (an IndexError naming a pixel value used as an
index, a DataError quoting a record), so the operator, the ledger and the receipt get only
the stage's category and the exception's class name.
"""

from __future__ import annotations

import re

from sealroom.errors import DataError, KeyReleaseDenied, SealroomError

CATEGORIES = {
    "start": "room start failed",
    "contract": "contract check failed",
    "policy": "pipeline check failed",
    "budget": "privacy budget reservation failed",
    "attest": "attestation failed",
    "keys": "key release or decryption failed",
    "train": "training failed",
    "release": "releasing outputs failed",
    "receipt": "writing the receipt failed",
}
SIGNAL = "room stopped by a signal"
MAX_REASON = 300
_NAME = re.compile(r"[^A-Za-z0-9_]")


def class_name(exc: BaseException) -> str:
    """The exception's class name, reduced to an identifier (never its message)."""
    return _NAME.sub("", type(exc).__name__)[:64] or "Exception"


def failure_reason(exc: BaseException, stage: str, keys_released: bool) -> str:
    """One line for the ledger, the operator and the receipt; see the module docstring."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return SIGNAL
    if isinstance(exc, SealroomError) and not keys_released:
        return one_line(str(exc)) or class_name(exc)
    if isinstance(exc, KeyReleaseDenied):
        return "key release denied"
    if isinstance(exc, DataError):
        return f"data loading failed: {class_name(exc)}"
    category = CATEGORIES.get(stage, "room failed")
    if stage == "train" and not isinstance(exc, SealroomError):
        return f"{category}: {class_name(exc)} raised by the model"
    return f"{category}: {class_name(exc)}"


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """Printable, single-line, bounded: how untrusted text may be shown at all."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
