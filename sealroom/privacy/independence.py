"""Record independence: refuse a model whose output for one record depends on another.

DP-SGD's guarantee rests on one record moving the clipped gradient sum by at most C. A
model that mixes the batch (a mean over axis 0, batch statistics, a transpose that puts
records on a contracted axis) lets one added record move every other record's gradient,
so the bound fails in every mode (issue 13: 2.6–3.1 C). Two checks, both before any data
key is released:

* static, for ONNX graphs (:mod:`sealroom.train.onnx_records`), at load time;
* a runtime probe on the real, converted model in training mode, on inputs the consumer
  cannot predict: changing some records leaves the others' outputs unchanged; the outputs
  follow a permutation of the batch; a record's output is the same in a batch of one, of
  B and of B+1; ∂ out_i / ∂ x_j is exactly zero for i ≠ j; and a forward changes no buffer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import onnx
import torch
from torch import Tensor, nn

from sealroom.errors import PrivacyError
from sealroom.train.models import ConvertedOnnx
from sealroom.train.onnx_records import record_mixing

if TYPE_CHECKING:
    from sealroom.data import FileTree
    from sealroom.pipeline.schema import Pipeline

PROBE_BATCH = 8
RTOL = 1e-4  # batch-size changes may pick other kernels: outputs agree to float rounding
ATOL = 1e-5  # times the output's scale (at least 1)
GRAD_SLACK = 1e-6  # off-CPU only: relative; on the CPU a per-record model gives exact zeros


def check_onnx_independence(model: onnx.ModelProto) -> list[str]:
    """Static findings for an ONNX graph, one line each (node, operator, why); [] if none."""
    return record_mixing(model)


def check_record_independence(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    where: str,
    batch: int = PROBE_BATCH,
    device: torch.device | str | None = None,
) -> None:
    """Refuse (PrivacyError, one line) a model whose outputs mix the records of a batch.

    ONNX models carry the static findings of their graph; any finding refuses. Then the
    runtime probe of the module docstring, on ``batch`` random records of ``input_shape``.
    The model's weights, buffers, modes and the global RNG are as they were afterwards.
    """
    for module in model.modules():
        if isinstance(module, ConvertedOnnx) and module.record_mixing:
            found = module.record_mixing
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise PrivacyError(f"{where}: records of a batch would mix: {found[0]}{more}")
    if batch < 2:
        raise PrivacyError(f"{where}: the independence probe needs a batch of at least 2")
    _Probe(model, tuple(input_shape), batch, where, device).run()


def check_pipeline_model(pipeline: Pipeline, model_tree: FileTree) -> None:
    """The room's check before any data key: the pipeline's model, made DP-compatible as
    DPTrainer will make it, must keep records apart. Global RNG state is left as it was."""
    from sealroom.privacy.compat import make_private_compatible
    from sealroom.train.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(pipeline.train.seed)
        model = build_model(pipeline.model, model_tree)
    model, _ = make_private_compatible(model)
    check_record_independence(model, pipeline.model.input_shape, where="model")


def _dropout_types() -> tuple[type[nn.Module], ...]:
    """Per-element random masks: independent of other records, switched off in the probe."""
    types: list[type[nn.Module]] = [nn.modules.dropout._DropoutNd]
    try:
        from onnx2torch.node_converters.dropout import OnnxDropoutDynamic

        types.append(OnnxDropoutDynamic)
    except ImportError:  # pragma: no cover - onnx2torch is a dependency
        pass
    return tuple(types)


class _Probe:
    def __init__(
        self,
        model: nn.Module,
        input_shape: tuple[int, ...],
        batch: int,
        where: str,
        device: torch.device | str | None,
    ) -> None:
        self.model = model
        self.where = where
        self.batch = batch
        first = next(model.parameters(), None)
        here = first.device if first is not None else torch.device("cpu")
        self.device = torch.device(device) if device else here
        # Inputs the consumer cannot predict, drawn without touching the global RNG.
        self.rng = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        self.shape = input_shape
        self.seed = int(torch.randint(0, 2**62, (1,), generator=self.rng))

    def records(self, n: int) -> Tensor:
        return torch.randn((n, *self.shape), generator=self.rng).to(self.device)

    def refuse(self, why: str) -> PrivacyError:
        return PrivacyError(
            f"{self.where}: {why}; DP-SGD's per-record clipping needs each record's output "
            "to depend on that record alone"
        )

    def run(self) -> None:
        with self._probing():
            x = self.records(self.batch)
            base = self.forward(x)
            if not _same(base, self.forward(x, seed=self.seed + 1)):
                raise self.refuse(
                    "two forwards of the same batch differ (randomness beyond Dropout layers)"
                )
            self._changed_records(x, base)
            self._permuted(x, base)
            self._batch_sizes(x, base)
            self._gradients(x)

    @contextmanager
    def _probing(self) -> Iterator[None]:
        """Training mode with Dropout off, RNG forked, buffers checked and restored."""
        modes = {m: m.training for m in self.model.modules()}
        buffers = {n: b.detach().clone() for n, b in self.model.named_buffers()}
        devices = [self.device] if self.device.type == "cuda" else []
        dropout = _dropout_types()
        try:
            with torch.random.fork_rng(devices=devices):
                self.model.train()
                for module in self.model.modules():
                    if isinstance(module, dropout):
                        module.eval()
                yield
            changed = [n for n, b in self.model.named_buffers() if not _equal(buffers[n], b)]
            if changed:
                raise self.refuse(
                    f"a training forward updates buffer {changed[0]!r}: statistics of "
                    "the batch would be kept in the model"
                )
        finally:
            for module, training in modes.items():
                module.training = training
            with torch.no_grad():
                for name, value in self.model.named_buffers():
                    if name in buffers and value.shape == buffers[name].shape:
                        value.copy_(buffers[name])

    def forward(self, x: Tensor, seed: int | None = None) -> list[Tensor]:
        torch.manual_seed(self.seed if seed is None else seed)
        try:
            with torch.no_grad():
                out = self.model(x)
        except Exception as exc:  # a model that only runs on some batch sizes mixes them
            raise self.refuse(
                f"the model fails on a batch of {len(x)} records ({type(exc).__name__})"
            ) from None
        return self._rows(out, len(x))

    def _rows(self, out: Any, n: int) -> list[Tensor]:
        tensors = _tensors(out)
        if not tensors:
            raise self.refuse("the model returns no tensor")
        for t in tensors:
            if t.dim() == 0 or t.shape[0] != n:
                raise self.refuse(
                    f"an output of shape {list(t.shape)} has no row per record (batch of {n})"
                )
        return tensors

    def _changed_records(self, x: Tensor, base: list[Tensor]) -> None:
        for changed in _partitions(self.batch):
            x2 = x.clone()
            x2[changed] = self.records(len(changed))
            kept = [i for i in range(self.batch) if i not in changed]
            out = self.forward(x2)
            if not _same([b[kept] for b in base], [o[kept] for o in out]):
                raise self.refuse(
                    f"changing record(s) {changed} changes the outputs of records {kept}"
                )

    def _permuted(self, x: Tensor, base: list[Tensor]) -> None:
        perm = torch.randperm(self.batch, generator=self.rng).to(self.device)
        out = self.forward(x[perm])
        if not _same([b[perm] for b in base], out):
            raise self.refuse("a record's output depends on its position in the batch")

    def _batch_sizes(self, x: Tensor, base: list[Tensor]) -> None:
        plus = self.forward(torch.cat([x, self.records(1)]))
        if not _same(base, [o[: self.batch] for o in plus]):
            raise self.refuse("adding one record to the batch changes the other records' outputs")
        for j in (0, self.batch - 1):
            alone = self.forward(x[j : j + 1])
            if not _same([b[j : j + 1] for b in base], alone):
                raise self.refuse(
                    f"record {j}'s output alone differs from its output in a batch of {self.batch}"
                )

    def _gradients(self, x: Tensor) -> None:
        """∂ Σ_{i∉S} w_i·out_i / ∂ x_S = 0 for each S of the bit partitions: every pair
        i ≠ j is split by one of them, so all cross-record derivatives are covered."""
        for changed in _partitions(self.batch):
            xg = x.clone().requires_grad_(True)
            torch.manual_seed(self.seed)
            with torch.enable_grad():
                outs = [o for o in _tensors(self.model(xg)) if o.is_floating_point()]
                terms = []
                for o in outs:
                    if not o.requires_grad:
                        continue
                    weight = torch.randn(o.shape, generator=self.rng).to(o.device, o.dtype)
                    weight[changed] = 0
                    terms.append((o * weight).sum())
                if not terms:
                    return
                total = torch.stack(terms).sum()
                (grad,) = torch.autograd.grad(total, xg, allow_unused=True)
            if grad is None:
                return
            leak = float(grad[changed].abs().max())
            limit = 0.0 if self.device.type == "cpu" else GRAD_SLACK * float(grad.abs().max())
            if not math.isfinite(leak) or leak > limit:
                kept = [i for i in range(self.batch) if i not in changed]
                raise self.refuse(
                    f"the outputs of records {kept} have a gradient ({leak:.3g}) with respect "
                    f"to record(s) {changed}"
                )


def _partitions(n: int) -> list[list[int]]:
    """Both halves of each bit of the record index: every pair of records is split once."""
    halves: list[list[int]] = []
    for bit in range(max(1, math.ceil(math.log2(n)))):
        ones = [i for i in range(n) if i >> bit & 1]
        zeros = [i for i in range(n) if not i >> bit & 1]
        halves.extend(h for h in (ones, zeros) if h and len(h) < n)
    return halves


def _tensors(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in _tensors(v)]
    if isinstance(out, list | tuple):
        return [t for v in out for t in _tensors(v)]
    return []


def _equal(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))


def _same(a: list[Tensor], b: list[Tensor]) -> bool:
    """Equal up to float rounding (another batch size may pick another kernel)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return False
        if not x.is_floating_point():
            if not torch.equal(x, y):
                return False
            continue
        scale = max(1.0, float(x.detach().abs().nan_to_num(0.0).max())) if x.numel() else 1.0
        if not torch.allclose(x, y, rtol=RTOL, atol=ATOL * scale, equal_nan=True):
            return False
    return True
