"""The lab's heavy dependencies (Ray, MLflow, ART) come with the ``lab`` extra, so a data
provider's install stays small. Checked once where a lab starts, without importing them."""

from __future__ import annotations

import importlib.util

from sealroom.errors import LabError

LAB_MODULES = {"ray": "Ray", "mlflow": "MLflow", "art": "the Adversarial Robustness Toolbox"}


def require_lab_extra() -> None:
    """Refuse in one line, naming what is missing, before a server or demo starts."""
    missing = [name for module, name in LAB_MODULES.items() if not _installed(module)]
    if missing:
        raise LabError(
            f"the lab needs {', '.join(missing)}: pip install 'sealroom[lab]' "
            "(`make test` installs it)"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
