"""Without the ``lab`` extra, a lab refuses to start in one line saying what to install."""

from __future__ import annotations

import pytest

from sealroom.errors import LabError
from sealroom.lab import extras


def test_a_missing_extra_is_named_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extras, "_installed", lambda module: module != "mlflow")
    with pytest.raises(LabError, match=r"^the lab needs MLflow: pip install 'sealroom\[lab\]'"):
        extras.require_lab_extra()


def test_the_installed_extra_passes() -> None:
    extras.require_lab_extra()  # make test installs the lab extra
