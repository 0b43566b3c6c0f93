"""Pydantic schemas for the pipeline config parts and the composed pipeline document.

Every part forbids unknown keys; names of components (optimizers, losses, metrics,
transforms, layers, architectures) are plain strings here and are resolved only
through the registries in :mod:`sealroom.pipeline.registry` — never by import path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from sealroom.crypto.manifest import MAX_PATH_BYTES, text_problem

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")]
# Names a loss expression refers to: plain identifiers (no '-', no leading '_', so no dunders).
ExprName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")]
# Seeds stay within 32 bits so the canonical JSON (RFC 8785, IEEE doubles) represents them exactly.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
MAX_NUM_THREADS = 64


def _relative_path(value: str) -> str:
    """A path inside a package: not absolute, no ``..`` component, no NUL or backslash, and
    no control or invisible character (refusals quote the path to the operator's terminal)."""
    parts = value.split("/")
    if value.startswith("/") or "\x00" in value or "\\" in value or ".." in parts:
        raise ValueError(
            "must be a relative path inside the package (no leading '/', no '..', no '\\')"
        )
    problem = text_problem(value, MAX_PATH_BYTES)
    if problem is not None:
        raise ValueError(f"must be a path a terminal shows as it is: it {problem}")
    return value


RelativePath = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_relative_path)]
Params = dict[str, float | int | str | bool | list[float] | list[int] | None]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Component(Strict):
    """A registry entry and its keyword parameters, e.g. ``{name: adam, params: {lr: 0.001}}``."""

    name: Identifier
    params: Params = Field(default_factory=dict)


# --------------------------------------------------------------------------- data sources


class IdxSource(Strict):
    """MNIST IDX files (raw or .gz)."""

    format: Literal["idx"] = "idx"
    images: RelativePath
    labels: RelativePath


class Hdf5Source(Strict):
    """An HDF5 file with a features array and a targets array."""

    format: Literal["hdf5"] = "hdf5"
    file: RelativePath
    features_key: str = "features"
    targets_key: str = "targets"
    groups_key: str | None = None  # e.g. patient ids, so a group split keeps a patient together


class ImageFolderSource(Strict):
    """One subfolder per class under ``root``."""

    format: Literal["image_folder"] = "image_folder"
    root: RelativePath = "."
    grayscale: bool = True
    image_size: tuple[int, int] | None = None


class PairedMaskSource(Strict):
    """Segmentation: images and masks with matching file names in two folders."""

    format: Literal["paired_masks"] = "paired_masks"
    images: RelativePath
    masks: RelativePath
    image_size: tuple[int, int] | None = None


class TableSource(Strict):
    """CSV or Parquet with a target column; id columns are used for joins then dropped."""

    format: Literal["table"] = "table"
    file: RelativePath
    target: str | None = None  # None: a feature-only table that a key join adds columns from
    id_columns: list[str] = Field(default_factory=list)
    feature_columns: list[str] | None = None


DataSource = Annotated[
    IdxSource | Hdf5Source | ImageFolderSource | PairedMaskSource | TableSource,
    Field(discriminator="format"),
]


class DatasetConfig(Strict):
    """One provider's dataset as the pipeline reads it; ``id`` matches the contract."""

    id: Identifier
    source: DataSource
    transforms: list[Component] = Field(default_factory=list)


class SplitConfig(Strict):
    """Train/validation/test fractions of the joined data, drawn with ``seed``."""

    train: float = Field(0.8, gt=0, lt=1)
    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)
    seed: Seed = 0
    group_by: str | None = None  # keep e.g. all slices of one patient in one split

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("train + val + test must sum to 1")
        return self


class JoinConfig(Strict):
    """How several providers' datasets become one: a union of rows or a key join of tables."""

    kind: Literal["union", "key"] = "union"
    on: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _key_join_needs_keys(self) -> JoinConfig:
        if self.kind == "key" and not self.on:
            raise ValueError("a key join needs `on` columns")
        return self


# --------------------------------------------------------------------------- model


class OnnxModel(Strict):
    """A model the consumer exported to ONNX; converted with onnx2torch, never run as code."""

    format: Literal["onnx"] = "onnx"
    file: RelativePath = "model.onnx"


class LayerSpec(Strict):
    """One layer of a declarative model; ``type`` comes from the layer registry.

    A layer reads the previous layer's output unless ``inputs`` names earlier layers
    by ``id`` (or ``input``, the model's input): that makes a small graph, e.g. a
    residual ``{type: add, inputs: [block_in, conv2]}``.
    """

    type: Identifier
    params: Params = Field(default_factory=dict)
    id: Identifier | None = None
    inputs: list[Identifier] = Field(default_factory=list, max_length=8)


class DeclarativeModel(Strict):
    """A stack (or small graph) of registered layers, optionally with safetensors weights."""

    format: Literal["declarative"] = "declarative"
    layers: list[LayerSpec] = Field(min_length=1, max_length=256)
    weights: RelativePath | None = None

    @model_validator(mode="after")
    def _inputs_name_earlier_layers(self) -> DeclarativeModel:
        seen = {"input"}
        for i, layer in enumerate(self.layers):
            for name in layer.inputs:
                if name not in seen:
                    raise ValueError(f"layers[{i}].inputs: {name!r} is not an earlier layer's id")
            if layer.id is not None:
                if layer.id in seen:
                    raise ValueError(f"layers[{i}].id: {layer.id!r} is used twice")
                seen.add(layer.id)
        return self


class ArchitectureModel(Strict):
    """A registered architecture (e.g. MONAI's U-Net) with its parameters."""

    format: Literal["architecture"] = "architecture"
    name: Identifier
    params: dict[str, Any] = Field(default_factory=dict)
    weights: RelativePath | None = None


ModelConfig = Annotated[
    OnnxModel | DeclarativeModel | ArchitectureModel, Field(discriminator="format")
]


class ModelPart(Strict):
    """The ``model.yaml`` part: the model and the shape of one input sample."""

    model: ModelConfig
    input_shape: list[int] = Field(min_length=1, max_length=5)  # one sample, no batch axis


# ------------------------------------------------------------------ loss, train, eval, privacy


class LossConfig(Strict):
    """Named components combined by an arithmetic expression over their names and variables.

    Example: ``components: {ce: {name: cross_entropy}}``, ``variables: {alpha: 0.25, gamma: 2}``,
    ``expression: "alpha * (1 - pt)**gamma * ce"``.
    """

    components: dict[ExprName, Component] = Field(min_length=1, max_length=16)
    variables: dict[ExprName, float] = Field(default_factory=dict, max_length=32)
    expression: str = Field(min_length=1, max_length=512)

    @model_validator(mode="after")
    def _names_distinct(self) -> LossConfig:
        clash = sorted(set(self.components) & set(self.variables))
        if clash:
            raise ValueError(f"names used both as component and variable: {', '.join(clash)}")
        return self


class EarlyStopping(Strict):
    """Stop once validation ``metric`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode`` says which way is better (``min`` for losses and errors, ``max`` for scores);
    left out, the metric's own direction is used.
    """

    metric: Identifier = "loss"
    patience: int = Field(3, ge=1, le=10_000)
    mode: Literal["min", "max"] | None = None
    min_delta: float = Field(0.0, ge=0)


class TrainConfig(Strict):
    """Optimizer, optional learning-rate scheduler and the training loop's settings."""

    optimizer: Component
    scheduler: Component | None = None
    epochs: int = Field(1, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    seed: Seed = 0
    device: Literal["cpu", "cuda", "auto"] = "auto"
    checkpoint_every: int | None = Field(None, ge=1)
    log_every: int = Field(50, ge=1)
    # Threads are the room host's to give: a consumer's 10**6 would make torch spawn
    # a pool the machine cannot hold. 64 is more cores than a room is given.
    num_threads: int | None = Field(None, ge=1, le=MAX_NUM_THREADS)
    early_stopping: EarlyStopping | None = None
    # Which weights are tested and exported: the last epoch's, or the best validation epoch's.
    checkpoint: Literal["best", "last"] = "last"


class EvalConfig(Strict):
    """The task, the metrics to compute on the test split and the plots to draw."""

    task: Literal["classification", "segmentation", "regression"] = "classification"
    metrics: list[Identifier] = Field(default_factory=lambda: ["loss", "accuracy"])
    threshold: float = Field(0.5, gt=0, lt=1)
    plots: bool = True
    samples: int = Field(0, ge=0, le=64)  # segmentation: sample overlays to write
    # Classification: one name per class (index = class id), for metrics.json and the plots.
    class_names: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, min_length=2, max_length=1000
    )
    # Validate every epoch (curves, early stopping, best checkpoint). Left out: yes without
    # privacy, no under privacy, where each epoch's validation is a charged DP release.
    per_epoch: bool | None = None

    @model_validator(mode="after")
    def _class_names_distinct(self) -> EvalConfig:
        if self.class_names is not None and self.task != "classification":
            raise ValueError(
                f"class_names: only a classification task has classes, not {self.task}"
            )
        names = self.class_names or []
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"class_names: {', '.join(twice)} named twice; names must differ")
        return self


class PrivacyConfig(Strict):
    """DP-SGD settings; a given ``noise_multiplier`` overrides calibration to ``epsilon``."""

    epsilon: float = Field(gt=0, le=100)
    delta: float = Field(gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    accountant: Literal["prv", "rdp"] = "prv"
    noise_multiplier: float | None = Field(None, gt=0)
    poisson_sampling: bool = True
    grad_sample_mode: Literal["hooks", "fused", "ghost", "functorch", "ew"] = "hooks"
    # Evaluation metrics leave a private run only through a Gaussian mechanism on their
    # sufficient statistics (sealroom.privacy.evaluation), charged to the same ε. Noise std
    # = eval_noise_multiplier x L2 sensitivity: at 10 the accuracy of 10,000 records moves
    # by about 0.1 %, and one release composed with training adds a few hundredths to ε.
    eval_noise_multiplier: float = Field(10.0, gt=0)
    eval_releases: int = Field(1, ge=0, le=100)  # planned (and allowed) evaluation releases
    eval_clip: float = Field(10.0, gt=0)  # per-record loss / error bound in the released sums


# --------------------------------------------------------------------------- the composed pipeline


class PipelinePart(Strict):
    """The ``pipeline.yaml`` part: the pipeline's name and how the joined data is split."""

    name: Identifier
    split: SplitConfig = Field(default_factory=SplitConfig)


class Pipeline(Strict):
    """The one document the room executes; its digest is what the contract and keys bind to."""

    name: Identifier
    datasets: list[DatasetConfig] = Field(min_length=1)
    join: JoinConfig = Field(default_factory=JoinConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelPart
    loss: LossConfig
    train: TrainConfig
    eval: EvalConfig = Field(default_factory=EvalConfig)
    privacy: PrivacyConfig | None = None

    @model_validator(mode="after")
    def _dataset_ids_unique(self) -> Pipeline:
        ids = [d.id for d in self.datasets]
        if len(ids) != len(set(ids)):
            raise ValueError("dataset ids must be unique")
        return self

    @model_validator(mode="after")
    def _validation_settings_agree(self) -> Pipeline:
        stopping = self.train.early_stopping
        wants = "train.early_stopping" if stopping else None
        if self.train.checkpoint == "best":
            wants = wants or "train.checkpoint: best"
        if wants and self.eval.per_epoch is False:
            raise ValueError(f"{wants} needs a validation every epoch; drop eval.per_epoch: false")
        if stopping is not None:
            usable = dict.fromkeys(["loss", *(m for m in self.eval.metrics)])
            usable.pop("confusion_matrix", None)
            if stopping.metric not in usable:
                raise ValueError(
                    f"train.early_stopping.metric: {stopping.metric!r} is not a validation "
                    f"metric of this pipeline; use one of {', '.join(usable)} (eval.metrics)"
                )
        return self

    def validates_each_epoch(self) -> bool:
        """Whether the run evaluates the validation split after every epoch (see EvalConfig)."""
        asked = self.train.early_stopping is not None or self.train.checkpoint == "best"
        if self.eval.per_epoch is not None:
            return self.eval.per_epoch or asked
        return asked or self.privacy is None
