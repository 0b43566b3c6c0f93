"""What a failed run tells the ledger: one line, and never a dump of a foreign error's data."""

from __future__ import annotations

from sealroom.errors import PolicyDenied
from sealroom.room.session import failure_reason


def test_sealroom_errors_are_reported_as_they_are() -> None:
    assert failure_reason(PolicyDenied("epochs 50 exceed the contract's limit 10")) == (
        "epochs 50 exceed the contract's limit 10"
    )


def test_foreign_errors_are_one_short_line_with_their_type() -> None:
    reason = failure_reason(ValueError("row\n" + "0.123 " * 500))
    assert reason.startswith("ValueError: row 0.123")
    assert "\n" not in reason and len(reason) < 240


def test_signals_say_so() -> None:
    assert (
        failure_reason(SystemExit("signal SIGTERM")) == "room stopped by a signal (signal SIGTERM)"
    )
    assert failure_reason(RuntimeError()) == "RuntimeError"
