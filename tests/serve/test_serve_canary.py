"""Stateless serving: a canary input and its outputs never reach a file on the operator's
side (workspace, ledger, the room's private folder, temp folders) nor its logs, stdout or
stderr. Checked while the room serves and after it stopped."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sealroom.serve.receipts import canonical
from sealroom.workspace import Workspace
from tests.serve.helpers import build, files_containing, running_room


def canary_input(rng: np.random.Generator) -> np.ndarray:
    """Four float32 values with many significant digits: their bytes and text are unique."""
    return (rng.uniform(-3.0, 3.0, size=(1, 4)) + 1e-4).astype(np.float32)


def needles(array: np.ndarray, outputs: list[object]) -> list[bytes]:
    values = [float(v) for v in array.ravel()]
    found = [array.tobytes(), array.ravel()[:2].tobytes()]
    found += [repr(v).encode() for v in values]  # a value as Python would print it
    found += [f"{v:.6f}".encode() for v in values]
    found += [json.dumps(outputs).encode(), canonical(outputs)]
    return found


def test_no_canary_on_disk_or_in_operator_output(
    workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    room_tmp = tmp_path / "tmp"
    room_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(room_tmp))  # the room's private folder
    caplog.set_level(logging.DEBUG)
    served = build(workspace, tmp_path, output={"kind": "probabilities", "decimals": 6})
    array = canary_input(np.random.default_rng(1234))
    roots = [tmp_path, Path(tempfile.gettempdir())]
    with running_room(served) as (url, _):
        with served.client(url) as client:
            outputs = client.infer(array).outputs
            # The same input twice: a second copy of anything would be a cache.
            assert client.infer(array).outputs == outputs
        secrets = needles(array, outputs)
        assert any(room_tmp.iterdir()), "the room's private folder should be under tmp"
        control = tmp_path / "control.bin"  # the search itself finds a planted copy
        control.write_bytes(b"x" + secrets[-1] + b"y")
        assert files_containing(roots, secrets) == [f"{control}: {secrets[-1][:12]!r}"]
        control.unlink()
        assert files_containing(roots, secrets) == []
    assert files_containing(roots, secrets) == []
    out, err = capfd.readouterr()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for text in (out, err, logged):
        assert not [s for s in secrets if s.decode("latin-1") in text]
