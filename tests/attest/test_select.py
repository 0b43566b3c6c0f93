"""Choosing the room's attester: an explicit setting, an explicit registry, no guessing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sealroom.attest.select import ATTESTERS, ENV_ATTESTER, ENV_PRIVLEVEL, room_attester
from sealroom.attest.software import INSECURE_LABEL, SoftwareAttester
from sealroom.attest.tsm import ConfigfsTsmAttester
from sealroom.errors import AttestationError, ConfigError
from sealroom.workspace import Workspace


@pytest.fixture
def tsm_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tsm" / "report"
    root.mkdir(parents=True)
    return root


@pytest.fixture
def no_tree(tmp_path: Path) -> Path:
    return tmp_path / "absent" / "tsm" / "report"


def test_the_registry_names_exactly_three_attesters() -> None:
    assert ATTESTERS.names() == ["auto", "configfs-tsm", "software"]


def test_software_is_the_default(
    workspace: Workspace, tsm_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_ATTESTER, raising=False)
    assert isinstance(room_attester(workspace, root=tsm_tree), SoftwareAttester)
    monkeypatch.setenv(ENV_ATTESTER, "software")
    assert isinstance(room_attester(workspace, root=tsm_tree), SoftwareAttester)


def test_configfs_tsm_where_present(
    workspace: Workspace, tsm_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ATTESTER, "configfs-tsm")
    attester = room_attester(workspace, root=tsm_tree)
    assert isinstance(attester, ConfigfsTsmAttester)
    assert (attester.root, attester.ws, attester.privlevel) == (tsm_tree, workspace, None)


def test_configfs_tsm_where_absent_is_refused_not_downgraded(
    workspace: Workspace, no_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ATTESTER, "configfs-tsm")
    with pytest.raises(AttestationError, match=f"no configfs-tsm at {no_tree}"):
        room_attester(workspace, root=no_tree)


def test_auto_picks_configfs_tsm_where_present(
    workspace: Workspace, tsm_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ATTESTER, "auto")
    assert isinstance(room_attester(workspace, root=tsm_tree), ConfigfsTsmAttester)


def test_auto_falls_back_to_software_with_the_insecure_warning(
    workspace: Workspace,
    no_tree: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(ENV_ATTESTER, "auto")
    with caplog.at_level(logging.WARNING, logger="sealroom.attest"):
        attester = room_attester(workspace, root=no_tree)
    assert isinstance(attester, SoftwareAttester)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(INSECURE_LABEL in w and str(no_tree) in w for w in warnings)


@pytest.mark.parametrize("value", ["sgx", "SOFTWARE", "sealroom.attest.tsm.ConfigfsTsmAttester"])
def test_unknown_value_is_refused_in_one_line(
    workspace: Workspace, tsm_tree: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ENV_ATTESTER, value)
    with pytest.raises(ConfigError, match=f"{ENV_ATTESTER}: unknown attester") as info:
        room_attester(workspace, root=tsm_tree)
    assert "\n" not in str(info.value) and "known: auto, configfs-tsm, software" in str(info.value)


def test_explicit_kind_wins_over_the_environment(
    workspace: Workspace, tsm_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ATTESTER, "configfs-tsm")
    assert isinstance(room_attester(workspace, "software", root=tsm_tree), SoftwareAttester)
    with pytest.raises(ConfigError, match="attester: unknown attester 'tpm'"):
        room_attester(workspace, "tpm", root=tsm_tree)


def test_privlevel_setting(
    workspace: Workspace, tsm_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_ATTESTER, "configfs-tsm")
    monkeypatch.setenv(ENV_PRIVLEVEL, "2")
    attester = room_attester(workspace, root=tsm_tree)
    assert isinstance(attester, ConfigfsTsmAttester) and attester.privlevel == 2
    monkeypatch.setenv(ENV_PRIVLEVEL, "7")
    with pytest.raises(AttestationError, match=r"privlevel 7 is out of range 0\.\.3"):
        room_attester(workspace, root=tsm_tree)
    monkeypatch.setenv(ENV_PRIVLEVEL, "-1")
    with pytest.raises(AttestationError, match=f"{ENV_PRIVLEVEL}='-1' is not a VMPL"):
        room_attester(workspace, root=tsm_tree)
