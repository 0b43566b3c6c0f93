"""Deterministic BraTS-like MRI volumes for demos and tests (real BraTS cannot be shipped).

Each patient is a skull-stripped, brain-shaped 3-D intensity field (grey/white
matter texture, dark ventricles) with one tumour: an irregular blob of oedema,
bright on FLAIR, around a core. Providers (hospitals) differ like scanners do:
intensity scale, noise level and a smooth multiplicative bias field. Output is
the real BraTS folder layout, ``<patient>/<patient>_flair.nii.gz`` and
``<patient>_seg.nii.gz`` (labels 0, 1 core, 2 oedema, 4 enhancing), plus
optionally ``_t1``. The same seed always gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from sealroom.data.nifti import nifti_bytes

DEFAULT_SHAPE = (96, 96, 48)


@dataclass(frozen=True)
class Scanner:
    """How one hospital's scanner renders the same anatomy."""

    scale: float  # stored intensity of the brightest tissue
    noise: float  # noise standard deviation, relative to tissue contrast
    bias: float  # strength of the smooth multiplicative bias field


@dataclass(frozen=True)
class Provider:
    name: str
    code: str  # patient-id prefix; codes differ, so providers never share a patient
    scanner: Scanner


PROVIDERS = (
    Provider("hospital_a", "A", Scanner(scale=1000.0, noise=0.03, bias=0.10)),
    Provider("hospital_b", "B", Scanner(scale=2500.0, noise=0.05, bias=0.20)),
    Provider("hospital_c", "C", Scanner(scale=600.0, noise=0.04, bias=0.15)),
    Provider("hospital_d", "D", Scanner(scale=1800.0, noise=0.06, bias=0.25)),
)


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], coarse: int = 6
) -> np.ndarray:
    """Unit-variance, spatially smooth noise: coarse Gaussian noise upsampled trilinearly."""
    small = rng.standard_normal((coarse, coarse, max(coarse // 2, 2)))
    field = ndimage.zoom(small, [s / c for s, c in zip(shape, small.shape, strict=True)], order=1)
    field = field[: shape[0], : shape[1], : shape[2]]
    return ((field - field.mean()) / (field.std() or 1.0)).astype(np.float32)


def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    gx, gy, gz = np.meshgrid(*axes, indexing="ij")
    return gx, gy, gz


def generate_patient(
    rng: np.random.Generator,
    scanner: Scanner,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    modalities: tuple[str, ...] = ("flair",),
) -> dict[str, np.ndarray]:
    """Volumes of one patient: each modality as int16 and ``seg`` as uint8 BraTS labels."""
    x, y, z = _grid(shape)
    radii = rng.uniform([0.70, 0.80, 0.75], [0.80, 0.90, 0.90])
    radius = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    brain = radius + 0.06 * _smooth_noise(rng, shape) < 1.0
    cortex = brain & (radius > 0.72)
    ventricles = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        vx = x - side * rng.uniform(0.10, 0.16)
        ventricles |= (vx / 0.08) ** 2 + ((y + 0.05) / 0.30) ** 2 + (z / 0.25) ** 2 < 1.0

    # Tumour: a few overlapping Gaussian blobs around a centre inside the brain, thresholded.
    centre = rng.uniform(-0.35, 0.35, size=3) * np.array([1.0, 1.0, 0.6])
    size = rng.uniform(0.14, 0.24)
    blobs = np.zeros(shape, dtype=np.float32)
    for _ in range(int(rng.integers(3, 6))):
        c = centre + rng.normal(0.0, size * 0.6, size=3)
        s = size * rng.uniform(0.6, 1.1)
        blobs += np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    blobs += 0.08 * _smooth_noise(rng, shape, coarse=10)
    oedema = brain & (blobs > 0.55)
    core = oedema & (blobs > 1.1)
    enhancing = core & (blobs < 1.35)
    seg = np.zeros(shape, dtype=np.uint8)
    seg[oedema] = 2
    seg[core] = 1
    seg[enhancing] = 4

    bias = np.exp(scanner.bias * _smooth_noise(rng, shape, coarse=3)).astype(np.float32)
    texture = 0.04 * _smooth_noise(rng, shape, coarse=16)
    contrast = {  # tissue intensities per modality: white matter, cortex, ventricles, oedema, core
        "flair": (0.45, 0.58, 0.12, 0.95, 0.80),
        "t1": (0.75, 0.55, 0.15, 0.45, 0.30),
        "t1ce": (0.70, 0.55, 0.15, 0.50, 0.95),
        "t2": (0.40, 0.55, 0.95, 0.85, 0.70),
    }
    volumes: dict[str, np.ndarray] = {}
    for modality in modalities:
        wm, gm, csf, oed, cor = contrast[modality]
        tissue = np.full(shape, wm, dtype=np.float32)
        tissue[cortex] = gm
        tissue[ventricles] = csf
        tissue[oedema] = oed
        tissue[core] = cor
        noisy = (
            tissue + texture + scanner.noise * rng.standard_normal(shape).astype(np.float32)
        ) * bias
        intensity = np.clip(noisy, 0.01, None) * scanner.scale
        volumes[modality] = np.where(brain, np.rint(intensity), 0).astype(np.int16)
    volumes["seg"] = np.where(brain, seg, 0).astype(np.uint8)
    return volumes


def patient_id(provider: Provider, index: int) -> str:
    return f"BraTS_{provider.code}_{index:03d}"


def write_provider(
    out: Path,
    provider: Provider,
    n_patients: int,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    modalities: tuple[str, ...] = ("flair",),
    provider_index: int = 0,
) -> list[str]:
    """Write one hospital's patient folders under ``out``; returns the patient ids."""
    spacing = (240.0 / shape[0], 240.0 / shape[1], 155.0 / shape[2])  # BraTS field of view, in mm
    affine = np.diag([*spacing, 1.0])
    patients = []
    for i in range(n_patients):
        rng = np.random.default_rng(np.random.SeedSequence([seed, provider_index, i]))
        volumes = generate_patient(rng, provider.scanner, shape, modalities)
        pid = patient_id(provider, i + 1)
        folder = out / pid
        folder.mkdir(parents=True, exist_ok=True)
        for kind, volume in volumes.items():
            (folder / f"{pid}_{kind}.nii.gz").write_bytes(nifti_bytes(volume, affine))
        patients.append(pid)
    return patients


def write_cohort(
    out: Path,
    n_providers: int = 3,
    patients_per_provider: int = 8,
    seed: int = 0,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    modalities: tuple[str, ...] = ("flair",),
) -> dict[str, list[str]]:
    """Write ``out/<hospital>/<patient>/...`` for up to four hospitals with disjoint patients."""
    if not 1 <= n_providers <= len(PROVIDERS):
        raise ValueError(f"n_providers must be within 1..{len(PROVIDERS)}")
    return {
        p.name: write_provider(out / p.name, p, patients_per_provider, seed, shape, modalities, k)
        for k, p in enumerate(PROVIDERS[:n_providers])
    }
