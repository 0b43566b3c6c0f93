"""`sealroom serve` (the operator starts an inference room) and `sealroom infer` (a client).

The operator's terminal shows the room's address, instance and public facts only; requests
and responses reach it as ciphertext at most. `sealroom infer` runs in the client's own
home: the contract imported there (`sealroom contract import`), the room host's attestation
key trusted (`sealroom attest trust`), the client's party key when it queries by name.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, err_console, refusals
from sealroom.errors import SealroomError

if TYPE_CHECKING:
    import numpy as np


def serve_command(
    contract: str = typer.Option(..., "--contract", help="Inference contract id."),
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to listen on."),
    port: int = typer.Option(8470, "--port", help="TCP port (0: any free port)."),
    allow_unsandboxed: bool = typer.Option(
        False, "--allow-unsandboxed", help="Run where the kernel has no Landlock (INSECURE)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Serve a contract's provisioned model from an attested room until Ctrl-C.

    Example: sealroom serve --contract mnist-infer --port 8470
    """
    from sealroom.attest.software import INSECURE_LABEL
    from sealroom.serve.launcher import serve_room
    from sealroom.workspace import Workspace

    started = time.perf_counter()

    def ready(url: str, instance: str) -> None:
        seconds = time.perf_counter() - started
        if json_out:  # one line, flushed: a supervisor reads it to learn the address
            facts = {"url": url, "instance": instance, "startup_s": round(seconds, 3)}
            print(json.dumps(facts), flush=True)
            return
        console.print(f"[bold]sealroom serve[/] contract [bold]{contract}[/]")
        console.print(f"[bold yellow]room: {INSECURE_LABEL}[/]")
        console.print(f"serving at [bold]{url}[/] (instance {instance}, ready in {seconds:.1f} s)")
        console.print("[dim]Ctrl-C stops the room; inference.stopped goes to the ledger[/]")

    with refusals():
        ws = Workspace.find()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the room is stopped, not failed
            serve_room(
                ws,
                contract,
                host=host,
                port=port,
                on_ready=ready,
                allow_unsandboxed=allow_unsandboxed,
            )
    if not json_out:
        err_console.print("room stopped")


def infer_command(
    files: list[Path] = typer.Argument(..., help=".npy arrays or .png images, one output each."),
    url: str = typer.Option(..., "--url", help="The room's address, e.g. http://127.0.0.1:8470."),
    contract: str = typer.Option(..., "--contract", help="Inference contract id (imported)."),
    as_party: str = typer.Option(None, "--as", help="Query as this party (restricted contracts)."),
    model_digest: str = typer.Option(
        None, "--model-digest", help="Pin this model (default: the contract's)."
    ),
    receipts: Path = typer.Option(
        None, "--receipts", help="Folder to save each response's receipt proof (JSON)."
    ),
    verify: bool = typer.Option(
        True, "--verify/--no-verify", help="Print the verification document."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Classify FILEs through the encrypted channel, after checking the room's attestation.

    Example: sealroom infer --url http://127.0.0.1:8470 --contract mnist-infer --as lab x.png
    """
    from sealroom.attest.software import trusted_attesters
    from sealroom.contract.store import load_contract
    from sealroom.serve.client import InferenceClient
    from sealroom.workspace import Workspace

    with refusals():
        ws = Workspace.find()
        signed = load_contract(ws, contract)
        terms = signed.contract.inference
        if terms is None:
            raise SealroomError(f"contract {contract} has no inference terms")
        identity = _identity(ws, as_party)
        arrays = [load_input(path, terms.input.shape, terms.input.dtype) for path in files]
        results = []
        with InferenceClient(
            url,
            signed,
            trusted_attesters=trusted_attesters(ws),
            model_digest=model_digest,
            identity=identity,
        ) as client:
            client.attest()
            for path, array in zip(files, arrays, strict=True):
                result = client.infer(array)
                proof = result.proof
                if receipts is not None:
                    proof = client.fetch_commitment(proof) or proof
                    _save(receipts, path, proof)
                results.append((path, result))
            document = client.verification_document()
    if json_out:
        emit_json(
            {
                "outputs": {str(p): r.outputs for p, r in results},
                "verification": [{"check": c, "result": r} for c, r in document],
            }
        )
        return
    for path, result in results:
        console.print(
            f"{path}: {_show(result.outputs)}  [dim]({result.latency_s * 1000:.1f} ms)[/]"
        )
    if verify:
        console.print("[bold]verification document[/]")
        for check, outcome in document:
            console.print(f"  {check}: {outcome}", highlight=False)


def _identity(ws: Any, name: str | None) -> Any:
    if name is None:
        return None
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.signing import SigningKey

    party = load_party(ws, name)
    return name, SigningKey(party._signing)


def load_input(path: Path, shape: list[int], dtype: str) -> np.ndarray:
    """An .npy array (one example or a batch) as it is, or a .png scaled to ``shape``."""
    import numpy as np

    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SealroomError(f"{path}: not a readable .npy array ({exc})") from None
        return np.asarray(array)
    if suffix == ".png":
        return _png(path, shape, dtype)
    raise SealroomError(f"{path}: expected a .npy or .png file")


def _png(path: Path, shape: list[int], dtype: str) -> np.ndarray:
    """Grayscale or RGB, resized to the signature's H×W, scaled to [0, 1] for floats."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if len(shape) != 3 or shape[0] not in (1, 3):
        raise SealroomError(f"{path}: the model takes {shape}, not a C×H×W image")
    channels, height, width = shape
    try:
        with Image.open(path) as opened:
            converted = opened.convert("L" if channels == 1 else "RGB").resize((width, height))
            pixels = np.asarray(converted)
    except (OSError, UnidentifiedImageError) as exc:
        raise SealroomError(f"{path}: not a readable image ({exc})") from None
    array = pixels[np.newaxis] if channels == 1 else pixels.transpose(2, 0, 1)
    if dtype.startswith("float"):
        return (array.astype(dtype) / 255.0).astype(dtype)
    return array.astype(dtype)


def _save(folder: Path, source: Path, proof: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{source.stem}.receipt.json"
    target.write_text(proof.model_dump_json(indent=2) + "\n", encoding="utf-8")


def _show(outputs: list[Any]) -> str:
    text = " ".join(str(o) for o in outputs)
    return text if len(text) <= 200 else text[:199] + "…"
