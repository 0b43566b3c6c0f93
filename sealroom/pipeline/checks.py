"""Resolve every name a pipeline uses against the registries, before anything runs.

Schemas check shapes and types; this module checks that each optimizer, scheduler,
loss, layer, architecture, metric and transform name is registered, that parameters
match the registered factory's signature, and that the loss expression parses.
Each check raises ConfigError whose message starts with the field path relative to
the section (``optimizer.name: unknown optimizer 'adamm' (known: ...)``); the caller
prefixes the file it came from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sealroom.errors import ConfigError, ConfigProblems
from sealroom.pipeline.registry import Registry, check_params
from sealroom.pipeline.schema import (
    ArchitectureModel,
    DatasetConfig,
    DeclarativeModel,
    EvalConfig,
    LossConfig,
    ModelPart,
    Pipeline,
    TrainConfig,
)

# Metrics the training loop computes itself, whether or not a metric registry lists them.
BUILTIN_METRICS = frozenset({"loss"})

Locate = Callable[[str], tuple[str, str]]  # section -> (file, field prefix inside that file)


def metric_registry() -> Registry[Any]:
    """The metric names a config may use: the torch-free table the metrics register against."""
    from sealroom.train.metric_names import METRIC_NAMES

    return METRIC_NAMES


def transform_registry() -> Registry[Any]:
    """The transforms (imported only for a dataset that lists some: it pulls in numpy)."""
    from sealroom.data.transforms import TRANSFORMS

    return TRANSFORMS


@contextmanager
def located(file: str, prefix: str = "") -> Iterator[None]:
    """Re-raise a ConfigError with ``file: prefix.`` in front of its field path."""
    try:
        yield
    except ConfigProblems as exc:
        lead = f"{prefix}." if prefix else ""
        raise ConfigProblems([f"{file}: {lead}{p}" for p in exc.problems]) from None
    except ConfigError as exc:
        lead = f"{prefix}." if prefix else ""
        raise ConfigError(f"{file}: {lead}{exc}") from None


class Collect:
    """Runs independent checks (``with collect:`` each) and keeps their ConfigErrors, so a
    section reports every bad name, not the first; ``raise_any`` raises them together."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __enter__(self) -> Collect:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, ConfigProblems):
            self.problems.extend(exc.problems)
        elif isinstance(exc, ConfigError):
            self.problems.append(str(exc))
        return isinstance(exc, ConfigError)

    def raise_any(self) -> None:
        if self.problems:
            raise ConfigProblems(self.problems)


def check_train(cfg: TrainConfig) -> None:
    from sealroom.train.components.optimizers import OPTIMIZERS
    from sealroom.train.components.schedulers import RESERVED, SCHEDULERS

    collect = Collect()
    with collect:
        optimizer = OPTIMIZERS.get(cfg.optimizer.name, where="optimizer.name")
        check_params(optimizer, cfg.optimizer.params, "optimizer.params", reserved=("params",))
    if cfg.scheduler is not None:
        with collect:
            scheduler = SCHEDULERS.get(cfg.scheduler.name, where="scheduler.name")
            check_params(
                scheduler.build, cfg.scheduler.params, "scheduler.params", reserved=RESERVED
            )
    collect.raise_any()


def check_loss(cfg: LossConfig) -> None:
    # Names, parameters, values and the expression, against torch-free specs of the components.
    from sealroom.train.components.loss_specs import check_loss_config

    check_loss_config(cfg)


def check_model(part: ModelPart) -> None:
    model = part.model
    if isinstance(model, DeclarativeModel):
        from sealroom.train.components.layer_factories import LAYERS

        # Names and parameter names only: building layers here could allocate large weights.
        collect = Collect()
        for i, layer in enumerate(model.layers):
            with collect:
                factory = LAYERS.get(layer.type, where=f"model.layers[{i}].type")
                check_params(factory, layer.params, f"model.layers[{i}].params")
        collect.raise_any()
    elif isinstance(model, ArchitectureModel):
        from sealroom.train.components.architectures import ARCHITECTURES

        factory = ARCHITECTURES.get(model.name, where="model.name")
        check_params(factory, model.params, "model.params")


# Layers whose output for one sample depends on the rest of the batch: no per-sample gradients.
BATCH_MIXING_LAYERS = frozenset({"batchnorm1d", "batchnorm2d"})


def check_private_model(part: ModelPart) -> None:
    """Under ``privacy``, refuse declared layers that DP-SGD cannot clip per sample."""
    model = part.model
    if isinstance(model, DeclarativeModel):
        for i, layer in enumerate(model.layers):
            if layer.type in BATCH_MIXING_LAYERS:
                raise ConfigError(
                    f"model.layers[{i}].type: {layer.type} mixes samples in a batch, which "
                    "differential privacy (privacy part) cannot allow; use GroupNorm (layer type "
                    "groupnorm) or layernorm instead"
                )


def check_eval(cfg: EvalConfig) -> None:
    metrics = metric_registry()
    collect = Collect()
    for i, name in enumerate(cfg.metrics):
        if name not in BUILTIN_METRICS:
            with collect:
                metrics.get(name, where=f"metrics[{i}]")
    collect.raise_any()


def check_private_eval(cfg: EvalConfig) -> None:
    """Under ``privacy``, only metrics released as noisy sums (sealroom.privacy.evaluation)."""
    from sealroom.privacy.evaluation import check_private_metrics

    check_private_metrics(cfg.task, cfg.metrics)


def check_dataset(cfg: DatasetConfig, private: bool = False) -> None:
    if not cfg.transforms:
        return
    if private:  # statistics fitted across records would leave the room unnoised
        from sealroom.data.transforms import check_record_local

        check_record_local(cfg.transforms)
    transforms = transform_registry()
    collect = Collect()
    for i, transform in enumerate(cfg.transforms):
        with collect:
            factory = transforms.get(transform.name, where=f"transforms[{i}].name")
            # A factory without an inspectable signature is checked when the stream builds it.
            with contextlib.suppress(TypeError, ValueError):
                check_params(factory, transform.params, f"transforms[{i}].params")
    collect.raise_any()


def check_pipeline(pipeline: Pipeline, locate: Locate) -> None:
    """Run every registry check; ``locate(section)`` names the file and field prefix.

    Raises ConfigProblems with one line per failing section (all of them, sorted).
    """
    sections: list[tuple[str, Callable[[], None]]] = [
        ("model", lambda: check_model(pipeline.model)),
        ("loss", lambda: check_loss(pipeline.loss)),
        ("train", lambda: check_train(pipeline.train)),
        ("eval", lambda: check_eval(pipeline.eval)),
    ]
    private = pipeline.privacy is not None
    if private:
        sections.append(("model", lambda: check_private_model(pipeline.model)))
        sections.append(("eval", lambda: check_private_eval(pipeline.eval)))
    for i, dataset in enumerate(pipeline.datasets):
        sections.append((f"datasets[{i}]", lambda d=dataset: check_dataset(d, private)))  # type: ignore[misc]
    problems: list[str] = []  # every section is checked; all problems are reported at once
    for section, check in sections:
        try:
            with located(*locate(section)):
                check()
        except ConfigError as exc:
            problems.extend(exc.problems if isinstance(exc, ConfigProblems) else [str(exc)])
    if problems:
        raise ConfigProblems(sorted(problems))
