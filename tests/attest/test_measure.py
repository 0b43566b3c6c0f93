"""The runtime measurement is deterministic and sensitive to every measured file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.attest.measure import measure_files, measure_runtime, package_root, runtime_files


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_measurement_is_the_installed_package(tmp_path: Path) -> None:
    assert measure_runtime() == measure_files(package_root())
    assert len(measure_runtime()) == 64


def test_only_sources_count(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"a.py": b"x = 1", "p/b.rego": b"package p"})
    before = measure_files(root)
    _tree(root, {"notes.txt": b"hello", "__pycache__/a.cpython-311.py": b"junk"})
    assert measure_files(root) == before
    assert [rel for rel, _ in runtime_files(root)] == ["a.py", "p/b.rego"]


def test_renaming_a_file_changes_the_measurement(tmp_path: Path) -> None:
    a = measure_files(_tree(tmp_path / "a", {"x.py": b"1"}))
    b = measure_files(_tree(tmp_path / "b", {"y.py": b"1"}))
    assert a != b


@settings(max_examples=30, deadline=None)
@given(content=st.binary(max_size=64), extra=st.binary(min_size=1, max_size=8))
def test_any_edit_changes_the_measurement(
    tmp_path_factory: object, content: bytes, extra: bytes
) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = _tree(Path(tmp), {"m.py": content})
        before = measure_files(root)
        _tree(root, {"m.py": content + extra})
        assert measure_files(root) != before


def test_moving_bytes_between_files_changes_the_measurement(tmp_path: Path) -> None:
    a = measure_files(_tree(tmp_path / "a", {"a.py": b"xy", "b.py": b""}))
    b = measure_files(_tree(tmp_path / "b", {"a.py": b"x", "b.py": b"y"}))
    assert a != b
