"""White-box evasion attacks (ART's FGM and PGD) on a model, over a grid of ε.

The ``attack`` task crafts adversarial examples on a SOURCE model for a fixed test subset
and saves them as one npz artifact (the *adversarial set*): the clean ``x``, the labels
``y``, and ``x_adv[method, ε]``. Other jobs then score that set on any target model
(:mod:`sealroom.lab.tasks.robustness`), which gives both white-box robustness (target =
source) and transferability (target ≠ source), or send it through a sealed model's
inference API (:mod:`sealroom.lab.tasks.attacks_served`).

Models arrive as ONNX (the export step's artifact): :func:`sealroom.train.models.load_onnx`
checks the graph (``check_onnx``: no external data, allowed operators, bounded size) before
onnx2torch converts it, so gradients flow through ordinary torch modules. Attacks are
chosen from the ``METHODS`` dict by name; nothing is looked up from a config string.
Crafting is deterministic: PGD starts at the clean point (``num_random_init=0``) and torch
and numpy are seeded before each run.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sealroom.errors import LabError
from sealroom.lab.attempts import ArtifactBlob
from sealroom.lab.spec import NAME_PATTERN
from sealroom.lab.tasks.registry import InputFile, TaskContext, task

if TYPE_CHECKING:  # torch loads only when a task runs (listing tasks must not import it)
    from torch import nn

SET_FORMAT = "sealroom.adversarial/1"
MAX_SET_BYTES = 512 << 20  # an adversarial set read back (uncompressed arrays together)
MAX_EXAMPLES = 100_000
MAX_GRID = 32  # ε values per attack


def _fgm(classifier: Any, eps: float, steps: int, step_ratio: float, batch: int) -> Any:
    from art.attacks.evasion import FastGradientMethod

    return FastGradientMethod(
        classifier, norm=np.inf, eps=eps, eps_step=eps, num_random_init=0, batch_size=batch
    )


def _pgd(classifier: Any, eps: float, steps: int, step_ratio: float, batch: int) -> Any:
    from art.attacks.evasion import ProjectedGradientDescent

    return ProjectedGradientDescent(
        classifier,
        norm=np.inf,
        eps=eps,
        eps_step=eps * step_ratio,
        max_iter=steps,
        num_random_init=0,
        batch_size=batch,
        verbose=False,
    )


# name -> builder(classifier, eps, pgd steps, pgd step ratio, batch size): the only way an
# entry point reaches an attack.
METHODS: dict[str, Callable[[Any, float, int, float, int], Any]] = {"fgm": _fgm, "pgd": _pgd}


@dataclass(frozen=True)
class AdversarialSet:
    """Clean examples, labels and ``x_adv[m, e]`` for ``methods[m]`` at ``eps[e]``."""

    source: str
    x: np.ndarray
    y: np.ndarray
    methods: tuple[str, ...]
    eps: tuple[float, ...]
    x_adv: np.ndarray  # (len(methods), len(eps), *x.shape)

    def adversarial(self, method: str, eps: float) -> np.ndarray:
        return np.asarray(self.x_adv[self.methods.index(method), self.eps.index(eps)])

    def to_npz(self) -> bytes:
        out = io.BytesIO()
        np.savez_compressed(
            out,
            format=np.array(SET_FORMAT),
            source=np.array(self.source),
            x=self.x.astype(np.float32),
            y=self.y.astype(np.int64),
            methods=np.array(self.methods, dtype=str),
            eps=np.array(self.eps, dtype=np.float64),
            x_adv=self.x_adv.astype(np.float32),
        )
        return out.getvalue()


def read_set(data: bytes, where: str) -> AdversarialSet:
    """An adversarial set from npz bytes (no pickle), every shape checked; one-line errors."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_SET_BYTES:
                raise LabError(f"{where}: adversarial set larger than {MAX_SET_BYTES} bytes")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LabError(f"{where}: not an npz adversarial set ({exc})") from None
    missing = {"format", "source", "x", "y", "methods", "eps", "x_adv"} - set(arrays)
    if missing:
        raise LabError(f"{where}: adversarial set lacks {', '.join(sorted(missing))}")
    if str(arrays["format"]) != SET_FORMAT:
        raise LabError(f"{where}: format {str(arrays['format'])[:40]!r}, expected {SET_FORMAT}")
    x, y, x_adv = arrays["x"], arrays["y"], arrays["x_adv"]
    methods = tuple(str(m) for m in arrays["methods"].reshape(-1))
    eps = tuple(float(e) for e in arrays["eps"].reshape(-1))
    if y.ndim != 1 or x.shape[:1] != y.shape or not np.issubdtype(y.dtype, np.integer):
        raise LabError(f"{where}: y must be integer labels, one per row of x")
    if x_adv.shape != (len(methods), len(eps), *x.shape):
        raise LabError(f"{where}: x_adv has shape {x_adv.shape}, expected (methods, eps, *x)")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise LabError(f"{where}: unknown attack method {unknown[0][:40]!r}")
    return AdversarialSet(str(arrays["source"]), x, y, methods, eps, x_adv)


# ------------------------------------------------------------------ inputs


def as_module(value: Any, where: str) -> nn.Module:
    """A model argument: a torch module (an earlier step), or an ONNX artifact (checked,
    then converted with onnx2torch)."""
    from torch import nn

    from sealroom.lab.tasks.values import LabModel
    from sealroom.train.models import load_onnx

    if isinstance(value, LabModel):
        return value.module.eval()
    if isinstance(value, nn.Module):
        return value.eval()
    if isinstance(value, InputFile):
        if value.kind != "onnx":
            raise LabError(f"{where}: expected an onnx artifact, got {value.kind!r}")
        return load_onnx(value.path.read_bytes(), where).eval()
    if isinstance(value, ArtifactBlob) and value.kind == "onnx":
        return load_onnx(value.data, where).eval()
    raise LabError(f"{where}: expected a model (an onnx artifact or a torch module)")


def as_arrays(value: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Test data: LabData, (x, y), a mapping or an npz file with x_test/y_test (else x/y)."""
    from sealroom.lab.tasks.values import LabData

    if isinstance(value, LabData):
        x, y = value.x_test, value.y_test
    elif isinstance(value, tuple | list) and len(value) == 2:
        x, y = value
    else:
        if isinstance(value, InputFile | ArtifactBlob):
            data = value.path.read_bytes() if isinstance(value, InputFile) else value.data
            try:
                with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                    value = {key: npz[key] for key in npz.files}
            except (OSError, ValueError) as exc:
                raise LabError(f"{where}: not an npz data file ({exc})") from None
        if not isinstance(value, dict):
            raise LabError(f"{where}: expected test data (x, y) or an npz with x_test, y_test")
        keys = ("x_test", "y_test") if "x_test" in value else ("x", "y")
        if keys[0] not in value or keys[1] not in value:
            raise LabError(f"{where}: test data lacks {keys[0]} and {keys[1]}")
        x, y = value[keys[0]], value[keys[1]]
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y).astype(np.int64)
    if x.shape[:1] != y.shape or len(y) == 0:
        raise LabError(f"{where}: x has {x.shape[:1]} rows, y has shape {y.shape}")
    return x, y


def predict(model: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Arg-max labels of ``model`` on ``x``, in batches, without gradients."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            logits = model(torch.from_numpy(np.ascontiguousarray(x[start : start + batch])))
            out.append(torch.as_tensor(logits).argmax(dim=1).numpy())
    return np.concatenate(out).astype(np.int64)


def subset(x: np.ndarray, y: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``limit`` examples chosen by ``seed`` (the same for every source model of a plan)."""
    if limit <= 0 or limit >= len(y):
        return x, y
    rows = np.sort(np.random.default_rng(seed).choice(len(y), size=limit, replace=False))
    return x[rows], y[rows]


# ------------------------------------------------------------------ crafting


def check_grid(methods: list[str], eps: list[float], where: str) -> None:
    if not methods or not eps:
        raise LabError(f"{where}: methods and eps must each name at least one value")
    for method in methods:
        if method not in METHODS:
            known = ", ".join(sorted(METHODS))
            raise LabError(f"{where}: unknown attack method {method[:40]!r} (known: {known})")
    if len(set(methods)) != len(methods) or len(set(eps)) != len(eps):
        raise LabError(f"{where}: methods and eps must not repeat a value")
    if len(eps) > MAX_GRID or any(not 0 < e <= 1 for e in eps):
        raise LabError(f"{where}: eps must be at most {MAX_GRID} values in (0, 1]")


def craft(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    methods: list[str],
    eps: list[float],
    *,
    source: str = "model",
    seed: int = 0,
    pgd_steps: int = 10,
    pgd_step_ratio: float = 0.25,
    batch_size: int = 128,
) -> AdversarialSet:
    """Untargeted L∞ attacks on ``model`` for every (method, ε), pixels clipped to [0, 1]."""
    import torch
    from art.estimators.classification import PyTorchClassifier
    from torch import nn

    check_grid(methods, eps, "attack")
    if len(y) > MAX_EXAMPLES:
        raise LabError(f"attack: at most {MAX_EXAMPLES} examples")
    model = model.eval()
    with torch.no_grad():
        classes = int(torch.as_tensor(model(torch.from_numpy(x[:1]))).shape[1])
    classifier = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=classes,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    out = np.empty((len(methods), len(eps), *x.shape), dtype=np.float32)
    for m, method in enumerate(methods):
        for e, value in enumerate(eps):
            torch.manual_seed(seed)
            np.random.seed(seed % (1 << 32))
            attack = METHODS[method](
                classifier, float(value), pgd_steps, pgd_step_ratio, batch_size
            )
            out[m, e] = attack.generate(x=x, y=y).astype(np.float32)
    return AdversarialSet(source, x, y, tuple(methods), tuple(float(e) for e in eps), out)


def success_rate(y: np.ndarray, clean: np.ndarray, adversarial: np.ndarray) -> float | None:
    """Of the examples the model classifies correctly when clean, the fraction it gets
    wrong on their adversarial versions; None when it gets none right."""
    correct = clean == y
    if not correct.any():
        return None
    return float(np.mean(adversarial[correct] != y[correct]))


def eps_label(eps: float) -> str:
    return f"{eps:g}"


@task(
    "attack",
    outputs=("adversarial",),
    description="FGM/PGD (ART, L-inf, white-box) on a source model over an eps grid: "
    "an npz adversarial set and white-box attack success rates",
    args={
        "model": "the source model (onnx artifact or torch module)",
        "data": "test data: npz with x_test/y_test (or x/y), or (x, y)",
        "methods": "attack names: fgm, pgd",
        "eps": "L-inf budgets in (0, 1], inputs scaled to [0, 1]",
        "limit": "test examples attacked (0 = all); picked by subset_seed",
        "subset_seed": "seed of the subset (keep it equal across sources)",
        "pgd_steps": "PGD iterations",
        "pgd_step_ratio": "PGD step size as a fraction of eps",
        "source": "name of the source model, carried in the set",
    },
)
def attack_task(
    ctx: TaskContext,
    model: Any,
    data: Any,
    methods: list[str] | None = None,
    eps: list[float] | None = None,
    limit: int = 200,
    subset_seed: int = 0,
    pgd_steps: int = 10,
    pgd_step_ratio: float = 0.25,
    source: str = "model",
) -> dict[str, Any]:
    if not isinstance(source, str) or re.fullmatch(NAME_PATTERN, source) is None:
        raise LabError(f"attack.source: {str(source)[:40]!r} is not a plain name")
    methods = list(methods or ["fgm", "pgd"])
    grid = [float(e) for e in (eps or [0.05, 0.1, 0.2])]
    module = as_module(model, "attack.model")
    x, y = subset(*as_arrays(data, "attack.data"), int(limit), int(subset_seed))
    made = craft(
        module, x, y, methods, grid, source=source, seed=ctx.seed,
        pgd_steps=int(pgd_steps), pgd_step_ratio=float(pgd_step_ratio),
    )  # fmt: skip
    clean = predict(module, x)
    ctx.metric("clean_accuracy", float(np.mean(clean == y)))
    for method in made.methods:
        for e in made.eps:
            adversarial = predict(module, made.adversarial(method, e))
            rate = success_rate(y, clean, adversarial)
            label = f"{method}.eps_{eps_label(e)}"
            ctx.metric(f"robust_accuracy.{label}", float(np.mean(adversarial == y)))
            if rate is not None:
                ctx.metric(f"attack_success_rate.{label}", rate)
            ctx.log(f"{source} {method} eps={eps_label(e)}: white-box success rate {rate}")
    blob = ArtifactBlob("adversarial", "npz", f"adversarial-{source}.npz", made.to_npz())
    return {"adversarial": blob}
