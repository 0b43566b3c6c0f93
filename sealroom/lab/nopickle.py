"""Evidence that a tracking store holds no pickle: the lab promises ONNX/JSON/NPZ only.

A pickle found anywhere in the MLflow store would mean someone who loads a model from the
UI or the registry runs code chosen by whoever produced it. The scan is a detector, not a
loader: it parses candidate byte runs with ``pickletools.genops`` (which never builds an
object) and reports a stream only when it parses cleanly to a STOP opcode, so random
weight bytes inside an ONNX file are not mistaken for a pickle.
"""

from __future__ import annotations

import io
import pickletools
import re
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path

import yaml

# Protocol 2-5 streams start with PROTO <n>; protocol 0/1 streams are recognised by their
# classic prologue (GLOBAL 'module\nname\n' or MARK + opcode) only when they parse fully.
_HEADER = re.compile(rb"\x80[\x02-\x05]")
_CLASSIC = re.compile(rb"c[A-Za-z_][\w.]*\n[A-Za-z_]\w*\n|\(dp0\n|\(lp0\n|[\]}]q\x00")
_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".ckpt", ".cloudpickle", ".dill")
_ALLOWED_FLAVOURS = {"onnx", "python_function"}
_MAX_PARSE = 1 << 20  # bytes one candidate stream may span


def _parses_to_stop(data: bytes, start: int) -> bool:
    """True when the bytes from ``start`` are a complete pickle stream of some substance
    (4+ opcodes over 16+ bytes: a chance run of valid opcodes in float weights is that short)."""
    ops = 0
    try:
        for opcode, _arg, pos in pickletools.genops(io.BytesIO(data[start : start + _MAX_PARSE])):
            ops += 1
            if opcode.name == "STOP":
                return ops >= 4 and (pos or 0) >= 15
    except Exception:
        return False
    return False


def pickle_offsets(data: bytes) -> list[int]:
    """Offsets in ``data`` where a complete pickle stream starts."""
    found: list[int] = []
    for pattern in (_HEADER, _CLASSIC):
        for match in pattern.finditer(data):
            if _parses_to_stop(data, match.start()):
                found.append(match.start())
    return sorted(found)


def _blobs_of_file(path: Path) -> Iterator[tuple[str, bytes]]:
    data = path.read_bytes()
    yield str(path), data
    if zipfile.is_zipfile(io.BytesIO(data)):  # torch.save writes a zip holding data.pkl
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield f"{path}!{member}", archive.read(member)


def scan_files(root: Path) -> list[str]:
    """One line per problem under ``root``: a pickle-like file name or a pickle stream."""
    problems: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() in _SUFFIXES:
            problems.append(f"{path}: pickle-style file name")
        for where, data in _blobs_of_file(path):
            if where != str(path) and where.lower().endswith(_SUFFIXES):
                problems.append(f"{where}: pickle-style member name")
            for offset in pickle_offsets(data):
                problems.append(f"{where}: pickle stream at byte {offset}")
    return problems


def scan_sqlite(db: Path) -> list[str]:
    """One line per value in any table of ``db`` that holds a pickle stream."""
    problems: list[str] = []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the db
            columns = [d[0] for d in cursor.description]
            for row_number, row in enumerate(cursor):
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, str):
                        value = value.encode("utf-8", "surrogateescape")
                    if isinstance(value, bytes) and pickle_offsets(value):
                        problems.append(f"{db}: {table}.{column} row {row_number} holds a pickle")
    return problems


def scan_mlmodels(root: Path) -> list[str]:
    """One line per MLmodel file whose flavours are not exactly ONNX served by mlflow.onnx."""
    problems: list[str] = []
    for path in sorted(root.rglob("MLmodel")):
        doc = yaml.safe_load(path.read_text()) or {}
        flavours = doc.get("flavors") or {}
        if set(flavours) != _ALLOWED_FLAVOURS:
            problems.append(f"{path}: flavours {sorted(flavours)}, expected onnx + python_function")
            continue
        loader = (flavours.get("python_function") or {}).get("loader_module")
        if loader != "mlflow.onnx":
            problems.append(f"{path}: python_function loader {loader!r}, expected mlflow.onnx")
    return problems


def scan_tracking_store(db: Path, artifact_root: Path) -> list[str]:
    """Everything above for one lab's MLflow store: database, artifact files, model files."""
    return scan_sqlite(db) + scan_files(artifact_root) + scan_mlmodels(artifact_root)
