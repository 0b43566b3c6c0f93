"""Layer factories are importable without torch; layers.py builds with the same registry."""

from __future__ import annotations

from sealroom.train.components import layer_factories, layers
from tests.train.components.fresh_python import run_fresh


def test_layers_uses_the_factories_registry() -> None:
    assert layers.LAYERS is layer_factories.LAYERS
    assert "conv2d" in layers.LAYERS and "concat" in layers.LAYERS


def test_registries_for_compose_load_without_torch() -> None:
    code = (
        "import sys\n"
        "import sealroom.train.components.layer_factories\n"
        "import sealroom.train.components.optimizers\n"
        "import sealroom.train.components.schedulers\n"
        "import sealroom.train.components.architectures\n"
        "import sealroom.train.metric_names\n"
        "heavy = {'torch', 'monai', 'numpy'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, heavy\n"
    )
    run_fresh(code)
