"""What each loss component takes, known without torch: names, parameters, auxiliary values.

``pipeline compose`` checks a loss config here: component names, parameter names and
values, and the expression over the components' terms. Importing the components
themselves (:mod:`.losses`) costs torch and MONAI, seconds for a YAML check. This table
is the one place loss names are declared: :mod:`.losses` registers each ``nn.Module``
under a name declared here (its registry refuses any other), and each component takes
exactly its spec's parameters (tests/train/components/test_component_loss_specs.py
compares the signatures). A spec function checks values the way the component's
constructor would, raising ValueError or TypeError; the component calls it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sealroom.errors import ConfigError
from sealroom.pipeline.expression import CompiledExpression, parse_expression
from sealroom.pipeline.registry import Registry, check_params
from sealroom.pipeline.schema import LossConfig


@dataclass(frozen=True)
class LossSpec:
    """A component's keyword parameters (``params``' signature) and its auxiliary values."""

    params: Callable[..., None]
    aux_names: tuple[str, ...] = ()


LOSS_SPECS: Registry[LossSpec] = Registry("loss")


def _spec(
    name: str, aux_names: tuple[str, ...] = ()
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(params: Callable[..., None]) -> Callable[..., None]:
        LOSS_SPECS.add(name, LossSpec(params, aux_names))
        return params

    return decorate


def _numbers(values: list[float] | float | None) -> None:
    """What ``torch.as_tensor(values, dtype=float32)`` accepts: a number or a flat list of them."""
    if values is None:
        return
    items = values if isinstance(values, list) else [values]
    for v in items:
        if not isinstance(v, int | float):  # bools included, as torch takes them
            raise TypeError(f"expected numbers, got {v!r}")


def _one_activation(sigmoid: bool, softmax: bool) -> None:
    if int(sigmoid) + int(softmax) > 1:  # MONAI's own check and words
        raise ValueError(
            "Incompatible values: more than 1 of "
            "[sigmoid=True, softmax=True, other_act is not None]."
        )


@_spec("cross_entropy", aux_names=("pt",))
def cross_entropy(
    weight: list[float] | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> None:
    _numbers(weight)
    float(label_smoothing)
    int(ignore_index)


@_spec("nll", aux_names=("pt",))
def nll(weight: list[float] | None = None, ignore_index: int = -100) -> None:
    _numbers(weight)
    int(ignore_index)


@_spec("bce_with_logits", aux_names=("pt",))
def bce_with_logits(pos_weight: float | None = None) -> None:
    _numbers(pos_weight)


@_spec("l1")
def l1() -> None:
    pass


@_spec("mse")
def mse() -> None:
    pass


@_spec("smooth_l1")
def smooth_l1(beta: float = 1.0) -> None:
    float(beta)


@_spec("focal", aux_names=("pt",))
def focal(gamma: float = 2.0, alpha: float | None = None) -> None:
    if not 0 <= gamma <= 16:
        raise ValueError("gamma must be within [0, 16]")
    if alpha is not None:
        float(alpha)


@_spec("dice")
def dice(
    sigmoid: bool = False,
    softmax: bool = False,
    to_onehot_y: bool = False,
    include_background: bool = True,
    squared_pred: bool = False,
    jaccard: bool = False,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
) -> None:
    _one_activation(sigmoid, softmax)
    float(smooth_nr)
    float(smooth_dr)


@_spec("dice_ce")
def dice_ce(
    sigmoid: bool = False,
    softmax: bool = False,
    to_onehot_y: bool = False,
    include_background: bool = True,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
) -> None:
    _one_activation(sigmoid, softmax)
    float(smooth_nr)
    float(smooth_dr)
    float(lambda_dice)
    float(lambda_ce)


# --------------------------------------------------------------------------- the expression


@dataclass(frozen=True)
class LossName:
    """What an expression name stands for: a variable, a component's loss or an aux value."""

    component: str | None
    aux: str | None = None


def loss_namespace(cfg: LossConfig) -> dict[str, LossName]:
    """Every name an expression over ``cfg`` may use; unknown component names are ConfigError."""
    names: dict[str, LossName] = {v: LossName(None) for v in cfg.variables}
    exporters: dict[str, list[str]] = {}
    for key, component in cfg.components.items():
        spec = LOSS_SPECS.get(component.name, where=f"components.{key}.name")
        names[key] = LossName(key)
        for aux in spec.aux_names:
            names[f"{key}_{aux}"] = LossName(key, aux)
            exporters.setdefault(aux, []).append(key)
    for aux, keys in exporters.items():
        if len(keys) == 1 and aux not in names:
            names[aux] = LossName(keys[0], aux)
    return names


def compile_loss_expression(cfg: LossConfig) -> CompiledExpression:
    """Parse ``cfg.expression`` over its namespace; exponents may be constants or variables."""
    namespace = loss_namespace(cfg)
    expression = parse_expression(cfg.expression, namespace, exponent_names=cfg.variables)
    if not any(namespace[n].component for n in expression.names):
        raise ConfigError("expression: uses no loss component")
    for name in expression.exponent_names:
        if abs(cfg.variables[name]) > 16:
            raise ConfigError(f"variables.{name}: used as an exponent, must be within ±16")
    # A dry run on plain numbers catches constant division by zero and overflow now, not mid-run.
    expression.evaluate({n: cfg.variables.get(n, 0.5) for n in namespace})
    return expression


def check_loss_config(cfg: LossConfig) -> None:
    """Everything building the loss would check, without building it (nor importing torch).

    The same order as :class:`~.composite.CompositeLoss`: parameter names of every
    component, the expression, then the values of the components the expression uses.
    """
    for key, component in cfg.components.items():
        spec = LOSS_SPECS.get(component.name, where=f"components.{key}.name")
        check_params(spec.params, component.params, f"components.{key}.params")
    namespace = loss_namespace(cfg)
    used = {namespace[n].component for n in compile_loss_expression(cfg).names}
    for key, component in cfg.components.items():
        if key not in used:
            continue
        try:
            LOSS_SPECS.get(component.name).params(**dict(component.params))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"components.{key}.params: {exc}") from None
