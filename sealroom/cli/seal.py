"""`sealroom seal` and `sealroom unseal`: a provider's files into a sealed package and back.

Both stream (memory holds a couple of chunks whatever the size) and both are
all-or-nothing: a package or an output folder appears only once it is complete.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from sealroom.cli.console import (
    JSON_OPTION,
    PASSPHRASE_FILE_OPTION,
    console,
    emit_json,
    progress,
    refusals,
)
from sealroom.errors import SealError

FORMATS = "idx | hdf5 | image_folder | paired_masks | table | nifti | onnx | safetensors | …"
_FORMAT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kib|mib|gib)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


class SealOptionError(SealError):
    """A `seal`/`unseal` option is malformed or contradicts another."""


def parse_size(text: str) -> int:
    """``4MiB``, ``512KiB``, ``1GiB`` or plain bytes (binary units only: chunks are powers of 2)."""
    match = _SIZE.match(text)
    if not match:
        raise SealOptionError(f"--chunk-size {text!r}: write bytes or e.g. 512KiB, 4MiB, 1GiB")
    return int(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _source_size(path: Path) -> int | None:
    """Bytes to seal, for the progress bar only (sealing itself re-checks everything)."""
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return None


def _write_key_file(path: Path, data_key: bytes) -> None:
    """The raw data key, base64, in a file created 0600 (never printed)."""
    from sealroom.crypto.signing import b64

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SealOptionError(f"--key-out {path}: already exists") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(b64(data_key) + "\n")


def _read_key_file(path: Path) -> bytes:
    try:
        key = base64.b64decode(path.read_text().strip(), validate=True)
    except FileNotFoundError:
        raise SealOptionError(f"--key {path}: no such file") from None
    except (binascii.Error, UnicodeDecodeError):
        raise SealOptionError(f"--key {path}: not a base64 data key") from None
    if len(key) != 32:
        raise SealOptionError(f"--key {path}: a data key is 32 bytes, this is {len(key)}")
    return key


@contextmanager
def _os_errors() -> Iterator[None]:
    """A file system refusal (permissions, a full disk) as one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or "file system"
        raise SealError(f"{where}: {exc.strerror or exc}") from None


def seal_command(
    path: Path = typer.Argument(..., help="File or folder to seal."),
    owner: str = typer.Option(..., "--owner", help="Party that owns and signs the package."),
    out: Path = typer.Option(..., "--out", help="Package folder to create (<name>.sealed)."),
    format: str | None = typer.Option(None, "--format", help=f"Data or model format: {FORMATS}."),
    chunk_size: str = typer.Option("4MiB", "--chunk-size", help="e.g. 4MiB, 512KiB or bytes."),
    no_owner_key: bool = typer.Option(
        False, "--no-owner-key", help="Do not store the data key wrapped to the owner."
    ),
    key_out: Path | None = typer.Option(
        None,
        "--key-out",
        help="Also write the raw data key here (0600; needed with "
        "--no-owner-key, or nobody could ever open the package).",
    ),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Seal a file or folder: AES-256-GCM chunks (STREAM) and a manifest signed by the owner.

    Prints the package digest, the name contracts and key-release policies use.

    Example: sealroom seal data/ --owner hospital --out mnist.sealed --format idx
    """
    from sealroom.crypto.identity import load_party
    from sealroom.crypto.package import seal
    from sealroom.workspace import Workspace

    with refusals(), _os_errors():
        size = parse_size(chunk_size)
        if format is not None and not _FORMAT.match(format):
            raise SealOptionError(f"--format {format!r}: lower-case letters, digits, '_', '.', '-'")
        if no_owner_key and key_out is None:
            raise SealOptionError("--no-owner-key needs --key-out FILE, or the key would be lost")
        if key_out is not None and key_out.exists():
            raise SealOptionError(f"--key-out {key_out}: already exists")
        party = load_party(Workspace.find(), owner)
        # Transient: a failure must leave one red line, not a half-drawn bar.
        with progress(transient=True) as bar:
            task = bar.add_task(f"sealing {path.name}", total=_source_size(path))
            result = seal(
                path,
                party,
                out,
                chunk_size=size,
                format=format,
                wrap_for_owner=not no_owner_key,
                progress=lambda n: bar.advance(task, n),
            )
        if key_out is not None:
            _write_key_file(key_out, result.data_key)
    m = result.manifest
    report: dict[str, Any] = {
        "package": str(result.path),
        "digest": result.digest,
        "package_id": m.package_id,
        "owner": m.owner,
        "owner_fingerprint": m.owner_fingerprint,
        "kind": m.kind,
        "format": m.format,
        "files": len(m.files),
        "size": m.size,
        "chunk_size": m.chunk_size,
        "chunks": m.n_chunks,
        "plaintext_sha256": m.plaintext_sha256,
        "owner_key": not no_owner_key,
        "key_file": str(key_out) if key_out else None,
    }
    if json_out:
        emit_json(report)
        return
    console.print(
        f"sealed [bold]{path}[/] → [bold]{result.path}[/]", highlight=False, soft_wrap=True
    )
    console.print(
        f"  digest  [bold]{result.digest}[/]  (contracts name this)",
        highlight=False,
        soft_wrap=True,
    )
    from sealroom.errors import plural

    console.print(
        f"  size    {human_size(m.size)} ({m.size} bytes) in {plural(len(m.files), 'file')}, "
        f"{plural(m.n_chunks, 'chunk')} of {human_size(m.chunk_size)}",
        highlight=False,
        soft_wrap=True,
    )
    if m.format:
        console.print(f"  format  {m.format}", highlight=False, soft_wrap=True)
    if no_owner_key:
        console.print(
            f"INFO data key NOT stored in the package; it is only in {key_out} (0600)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"INFO data key wrapped to owner {m.owner!r} (HPKE, owner_key.hpke); "
            f"`sealroom unseal {result.path} --as {m.owner} --out DIR` opens it",
            highlight=False,
            soft_wrap=True,
        )


def unseal_command(
    package: Path = typer.Argument(..., help="Sealed package folder."),
    as_: str | None = typer.Option(
        None, "--as", help="Party opening it: the owner (data key wrapped in the package)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder to create with the files."),
    key: Path | None = typer.Option(
        None, "--key", help="Raw data key file from `seal --key-out` instead of --as."
    ),
    passphrase_file: Path | None = PASSPHRASE_FILE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Verify a package (owner's signature, every chunk) and write its files to a new folder.

    Nothing appears under --out unless every chunk authenticated.

    Example: sealroom unseal mnist.sealed --as hospital --out mnist/
    """
    from sealroom.crypto.package import SealedPackage, owner_data_key
    from sealroom.crypto.rotation import identity_with_fingerprint, party_for
    from sealroom.errors import IdentityError
    from sealroom.workspace import Workspace

    with refusals(), _os_errors():
        if (as_ is None) == (key is None):
            raise SealOptionError("give exactly one of --as PARTY or --key FILE")
        if out.exists() or out.is_symlink():
            raise SealOptionError(f"--out {out}: already exists; choose a new folder")
        ws = Workspace.find()
        manifest = SealedPackage.read_manifest(package)
        try:
            # The owner's key when it sealed (a rotation archives, and keeps, the old one).
            owner = identity_with_fingerprint(ws, manifest.owner, manifest.owner_fingerprint)
        except IdentityError:
            raise IdentityError(
                f"{package}: sealed by {manifest.owner!r}, unknown here; "
                f"import their identity first (`sealroom party import`)"
            ) from None
        sealed = SealedPackage.open(package, owner)
        data_key = (
            _read_key_file(key)
            if key
            else owner_data_key(package, party_for(ws, as_ or "", manifest.owner_fingerprint))
        )
        with progress(transient=True) as bar:
            task = bar.add_task(f"unsealing {package.name}", total=sealed.manifest.size)
            written = sealed.unseal_to(out, data_key, progress=lambda n: bar.advance(task, n))
    m = sealed.manifest
    if json_out:
        emit_json(
            {
                "package": str(package),
                "digest": sealed.digest,
                "owner": m.owner,
                "out": str(out),
                "files": [p.relative_to(out).as_posix() for p in written],
                "size": m.size,
                "chunks": m.n_chunks,
                "plaintext_sha256": m.plaintext_sha256,
            }
        )
        return
    from sealroom.errors import plural

    console.print(
        f"unsealed [bold]{sealed.digest}[/] (owner {m.owner}, signature and "
        f"{plural(m.n_chunks, 'chunk')} verified) → [bold]{out}[/]: "
        f"{plural(len(written), 'file')}, {human_size(m.size)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"  plaintext sha256 {m.plaintext_sha256}", highlight=False, soft_wrap=True)
