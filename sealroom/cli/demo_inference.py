"""`sealroom demo inference`: the summary of the serving story (sealroom/serve/story.py)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sealroom.cli.console import console, emit_json, heading, refusals

if TYPE_CHECKING:
    from sealroom.room.story import Narrator


def inference_demo(
    home: Path | None, epochs: int | None, json_out: bool, narrator: Narrator
) -> None:
    """Train, provision, serve, classify; print accuracy served vs local, latency, receipts."""
    from sealroom.errors import WorkspaceError
    from sealroom.room.story import DEMO_PASSPHRASE
    from sealroom.serve.story import InferenceStory

    with refusals():
        if home is None:
            home = Path(tempfile.mkdtemp(prefix="sealroom-demo-inference-"))
        elif home.exists() and any(home.iterdir()):
            raise WorkspaceError(f"{home} is not empty; the demo needs a fresh folder")
        home = home.resolve()
        narrator.note(f"demo folder {home}")
        started = time.monotonic()
        result = InferenceStory(home, narrator, epochs=epochs).play()
    summary = result.summary() | {"total_seconds": round(time.monotonic() - started, 1)}
    if json_out:
        emit_json(summary)
        return
    heading(console, "[bold green]Done[/]")
    lines = [
        f"held-out digits   {result.images} (never sealed, never trained on)",
        f"accuracy served   {result.served_accuracy:.4f}",
        f"accuracy local    {result.local_accuracy:.4f} (the decrypted model, plain ONNX Runtime)",
        f"same labels       {result.agreeing} of {result.images}",
        f"latency           p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms "
        "(one digit a request, encrypted, signed, receipted)",
        f"receipts verified {result.receipts_verified} of {result.images}"
        + (
            ", the last one's batch root committed to the ledger"
            if result.committed_in_ledger
            else ""
        ),
    ]
    for line in lines:
        console.print(f"  {line}", highlight=False)
    if result.insecure:
        console.print("  [yellow]room attested by INSECURE software attestation (no TEE)[/]")
    console.print(f"  homes: room {result.home}, clinic {result.clinic_home}", highlight=False)
    console.print(
        f"  the demo parties' keys are encrypted under the published demo passphrase: "
        f"SEALROOM_PASSPHRASE='{DEMO_PASSPHRASE.decode()}'",
        highlight=False,
        soft_wrap=True,
    )
    times = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    console.print(f"  ({summary['total_seconds']:.0f} s: {times})", highlight=False)
