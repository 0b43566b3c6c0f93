"""Outputs sealed to the consumer: round trip, wrong party, and any edit is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealroom.crypto.identity import Party
from sealroom.errors import SealError, WrongKeyError
from sealroom.room.outputs import SealedOutput, check_sealed, open_outputs, seal_outputs

FILES = {"metrics.json": b'{"accuracy": 0.9}', "checkpoints/epoch-1.safetensors": b"w" * 300}
KINDS = {"metrics.json": "metrics", "checkpoints/epoch-1.safetensors": "model"}


@pytest.fixture(scope="module")
def consumer() -> Party:
    return Party.generate("lab", "consumer")


def _seal(tmp_path: Path, consumer: Party) -> tuple[Path, list[SealedOutput], str]:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    sealed, key_sha = seal_outputs(FILES, KINDS, consumer.identity.encryption_key, "run-1", run_dir)
    return run_dir, sealed, key_sha


def test_round_trip_gives_back_every_output(tmp_path: Path, consumer: Party) -> None:
    run_dir, sealed, key_sha = _seal(tmp_path, consumer)
    check_sealed(run_dir, sealed, key_sha)
    assert open_outputs(run_dir, "run-1", sealed, consumer) == FILES
    assert {o.kind for o in sealed} == {"metrics", "model"}
    assert b"accuracy" not in (run_dir / "outputs" / "metrics.json.sealed").read_bytes()


def test_another_party_cannot_open_them(tmp_path: Path, consumer: Party) -> None:
    run_dir, sealed, _ = _seal(tmp_path, consumer)
    with pytest.raises(WrongKeyError, match="not hospital"):
        open_outputs(run_dir, "run-1", sealed, Party.generate("hospital", "provider"))


def test_outputs_cannot_move_to_another_run(tmp_path: Path, consumer: Party) -> None:
    run_dir, sealed, _ = _seal(tmp_path, consumer)
    with pytest.raises(WrongKeyError):
        open_outputs(run_dir, "run-2", sealed, consumer)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(sorted(FILES)), st.integers(min_value=0), st.integers(1, 255))
def test_any_edit_of_a_sealed_output_is_named(
    tmp_path: Path, consumer: Party, name: str, position: int, flip: int
) -> None:
    run_dir, sealed, key_sha = _seal(tmp_path, consumer)
    path = run_dir / "outputs" / (name + ".sealed")
    data = bytearray(path.read_bytes())
    data[position % len(data)] ^= flip
    path.write_bytes(bytes(data))
    with pytest.raises(SealError, match=name.split("/")[-1]):
        check_sealed(run_dir, sealed, key_sha)
    with pytest.raises(SealError, match="does not decrypt"):
        open_outputs(run_dir, "run-1", sealed, consumer)


def test_output_names_cannot_leave_the_run_folder(tmp_path: Path, consumer: Party) -> None:
    with pytest.raises(SealError, match="leaves the run folder"):
        seal_outputs({"../x": b"1"}, {}, consumer.identity.encryption_key, "run-1", tmp_path)
