"""The story engine behind ``sealroom demo NAME``: DESIGN.md steps 1–6 in a fresh workspace.

A scenario is data, not code: ``scenarios/<name>/story.yaml`` names the parties, each
provider's dataset and prepare step, the consumer's model step and the contract values.
Prepare steps are modules under ``scenarios.`` run as ``python -m MODULE ARGS`` in their own
process (they are the provider's and consumer's tooling, never code the room runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sealroom.errors import ConfigError, RoomError
from sealroom.room.launcher import OnEvent, run_room
from sealroom.room.receipt import RunReceipt
from sealroom.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = REPO_ROOT / "scenarios"
STORY_FILE = "story.yaml"
# The demo's parties live in a throwaway workspace: their keys are still encrypted at rest,
# under this fixed, published passphrase, so `sealroom demo` runs without a prompt.
DEMO_PASSPHRASE = b"sealroom demo passphrase (throwaway workspace)"


def _module_step(value: list[str]) -> list[str]:
    if not value or not value[0].startswith("scenarios."):
        raise ValueError("a step is [MODULE, ARGS...] with MODULE under scenarios.")
    return value


class ProviderPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    party: str
    dataset: str
    prepare: list[str]
    # The provider's dataset declaration (a file of the scenario folder): which records
    # train and which are held out; signed by the provider and pinned by the contract.
    declaration: str | None = None

    _step = field_validator("prepare")(_module_step)


class ModelPart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prepare: list[str]

    _step = field_validator("prepare")(_module_step)


class Scenario(BaseModel):
    """One story: its parties, their preparation steps, the pipeline parts and the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    consumer: str
    operator: str
    providers: list[ProviderPart] = Field(min_length=1)
    model: ModelPart | None = None
    # Steps that make stand-in raw data the providers would already hold (e.g. synthetic
    # hospitals); "{base}" is the demo folder.
    world: list[list[str]] = Field(default_factory=list)
    pipeline: str = "."
    contract: str = "contract.yaml"
    folder: Path = Path(".")

    @field_validator("world")
    @classmethod
    def _world_steps(cls, steps: list[list[str]]) -> list[list[str]]:
        return [_module_step(step) for step in steps]

    @property
    def name(self) -> str:
        return self.folder.name


def available_scenarios(root: Path = SCENARIOS) -> list[str]:
    return sorted(p.parent.name for p in root.glob(f"*/{STORY_FILE}"))


def load_scenario(name: str, root: Path = SCENARIOS) -> Scenario:
    path = root / name / STORY_FILE
    if not path.exists():
        known = ", ".join(available_scenarios(root)) or "none"
        raise ConfigError(f"no scenario {name!r} (known: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Scenario.model_validate({**data, "folder": path.parent})
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        raise ConfigError(f"{path}: {str(exc).splitlines()[0]}") from None


class Narrator(Protocol):
    """How the story shows itself: titled steps, notes, byte progress, the room's events."""

    def step(self, title: str) -> None: ...

    def note(self, text: str) -> None: ...

    def bytes(self, label: str, total: int) -> AbstractContextManager[Callable[[int], None]]: ...

    def room(self) -> AbstractContextManager[OnEvent]: ...


@dataclass
class StoryResult:
    home: Path
    receipt: RunReceipt
    run_dir: Path
    outputs: Path
    files: list[Path] = field(default_factory=list)


@dataclass
class _Sealed:
    owner: str
    digest: str
    data_key: bytes
    path: Path


class Story:
    """Plays one scenario in ``base`` (workspace in ``base/workspace``, roles beside it)."""

    def __init__(
        self, scenario: Scenario, base: Path, narrator: Narrator, epochs: int | None = None
    ) -> None:
        self.scenario = scenario
        self.base = base
        self.narrator = narrator
        self.epochs = epochs
        self.ws: Workspace | None = None

    def _run_step(self, argv: list[str], out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        args = [a.replace("{out}", str(out)).replace("{base}", str(self.base)) for a in argv]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        done = subprocess.run(
            [sys.executable, "-m", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RoomError(f"step {args[0]} failed (exit {done.returncode}): {last}")
        for line in done.stdout.strip().splitlines():
            self.narrator.note(line)

    def _seal(self, source: Path, owner: str, out: Path, fmt: str) -> _Sealed:
        from sealroom.crypto.identity import load_party
        from sealroom.crypto.package import seal

        assert self.ws is not None
        party = load_party(self.ws, owner)
        total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
        with self.narrator.bytes(f"sealing {source.name}", total) as advance:
            result = seal(source, party, out, format=fmt, progress=advance)
        self.narrator.note(f"{out.name}: digest {result.digest}")
        return _Sealed(owner, result.digest, result.data_key, out)

    def play(self) -> StoryResult:
        """Tell the story in a throwaway workspace whose parties share a demo passphrase."""
        from sealroom.crypto.passphrase import passphrase_in_effect

        with passphrase_in_effect(DEMO_PASSPHRASE):
            return self._play()

    def _play(self) -> StoryResult:
        sc, n = self.scenario, self.narrator
        from sealroom.crypto.identity import create_party

        n.step("1. The parties")
        self.ws = ws = Workspace.create(self.base / "workspace")
        roles = [(p.party, "provider") for p in sc.providers]
        roles += [(sc.consumer, "consumer"), (sc.operator, "operator")]
        for name, role in dict(roles).items():
            create_party(ws, name, role)  # type: ignore[arg-type]
            n.note(f"{role} {name} created (signing and encryption keys, encrypted, 0600)")

        if sc.world:
            n.step("   Stand-in raw data that the providers already hold")
            for argv in sc.world:
                self._run_step(argv, self.base)

        sealed: dict[str, _Sealed] = {}
        for provider in sc.providers:
            n.step(f"2. Provider {provider.party} prepares and seals dataset {provider.dataset}")
            data = self.base / f"provider-{provider.party}" / provider.dataset
            self._run_step(provider.prepare, data)
            out = ws.packages / f"{provider.dataset}.sealed"
            sealed[provider.dataset] = self._seal(data, provider.party, out, "dataset")

        declared = self._declare()

        n.step(f"3. Consumer {sc.consumer} saves and seals the base model, composes the pipeline")
        model: _Sealed | None = None
        if sc.model is not None:
            model_dir = self.base / f"consumer-{sc.consumer}" / "model"
            self._run_step(sc.model.prepare, model_dir)
            model = self._seal(model_dir, sc.consumer, ws.packages / "model.sealed", "model")
        pipeline_file = self._compose()

        n.step("4. Every party signs the contract; the ledger registers it")
        contract_id = self._contract(sealed, model, declared)
        self._sign_pipeline(pipeline_file, contract_id)

        n.step("5. Owners import their data keys into the key service")
        self._import_keys(contract_id, [*sealed.values(), *([model] if model else [])])

        n.step(f"6. Operator {sc.operator} runs the clean room")
        with n.room() as on_event:
            receipt = run_room(ws, contract_id, pipeline_file, on_event=on_event)
        run_dir = ws.runs / receipt.run_id

        n.step(f"7. Consumer {sc.consumer} verifies the receipt and decrypts the outputs")
        from sealroom.crypto.identity import load_party
        from sealroom.room.consumer import decrypt_run

        outputs = self.base / f"consumer-{sc.consumer}" / "outputs"
        _, files = decrypt_run(ws, receipt.run_id, load_party(ws, sc.consumer), outputs)
        return StoryResult(ws.home, receipt, run_dir, outputs, files)

    def _compose(self) -> Path:
        from sealroom.pipeline.compose import compose, dump_pipeline

        pipeline = compose(self.scenario.folder / self.scenario.pipeline)
        if self.epochs is not None:
            train = pipeline.train.model_copy(update={"epochs": self.epochs})
            pipeline = pipeline.model_copy(update={"train": train})
        path = self.base / f"consumer-{self.scenario.consumer}" / "pipeline.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_pipeline(pipeline), encoding="utf-8")
        self.narrator.note(f"pipeline {pipeline.name} composed: {path}")
        return path

    def _sign_pipeline(self, pipeline_file: Path, contract_id: str) -> None:
        """The consumer signs the pipeline for this contract: key services release to no other."""
        from sealroom.pipeline.signing import sign_pipeline_file

        assert self.ws is not None
        consumer = self.scenario.consumer
        path, _ = sign_pipeline_file(self.ws, pipeline_file, contract_id, consumer)
        self.narrator.note(f"pipeline signed by {consumer} for contract {contract_id}: {path.name}")

    def _declare(self) -> dict[str, str]:
        """Each provider with a declaration signs it (into the workspace's declarations
        folder, where ``sealroom run`` finds it); its digest by dataset id."""
        from sealroom.crypto.identity import load_party
        from sealroom.pipeline.declaration import (
            read_declaration_draft,
            save_declaration,
            sign_declaration,
        )
        from sealroom.room.declared import declarations_dir

        assert self.ws is not None
        digests: dict[str, str] = {}
        for provider in self.scenario.providers:
            if provider.declaration is None:
                continue
            draft = read_declaration_draft(self.scenario.folder / provider.declaration)
            if draft.dataset != provider.dataset:
                raise ConfigError(
                    f"{provider.declaration}: declares dataset {draft.dataset!r}, "
                    f"not {provider.dataset!r}"
                )
            signed = sign_declaration(draft, load_party(self.ws, provider.party))
            path = declarations_dir(self.ws.home) / f"{provider.dataset}.declaration.json"
            save_declaration(path, signed)
            self.narrator.note(f"{provider.party} declares the splits: {draft.describe()}")
            self.narrator.note(f"signed declaration {path.name}: digest {signed.digest}")
            digests[provider.dataset] = signed.digest
        return digests

    def _contract(
        self, sealed: dict[str, _Sealed], model: _Sealed | None, declared: dict[str, str]
    ) -> str:
        from sealroom.contract.loading import read_document
        from sealroom.contract.workflow import propose_contract, sign_contract

        assert self.ws is not None
        sc = self.scenario
        draft: dict[str, Any] = read_document(sc.folder / sc.contract)
        for dataset in draft.get("datasets", []):
            if dataset["id"] not in sealed:
                raise ConfigError(f"{sc.contract}: dataset {dataset['id']!r} has no provider step")
            dataset["package_digest"] = sealed[dataset["id"]].digest
            if dataset["id"] in declared:
                dataset["declaration_digest"] = declared[dataset["id"]]
        if model is not None and draft.get("model"):
            draft["model"]["package_digest"] = model.digest
        if self.epochs is not None:
            limits = draft["constraints"]
            limits["max_epochs"] = max(int(limits["max_epochs"]), self.epochs)
        path = self.base / f"consumer-{sc.consumer}" / "contract.yaml"
        path.write_text(yaml.safe_dump(draft, sort_keys=False), encoding="utf-8")
        signed = propose_contract(self.ws, path, sc.consumer)
        self.narrator.note(f"contract {signed.id} proposed and signed by {sc.consumer}")
        for name in signed.missing_signers:
            signed = sign_contract(self.ws, signed.id, name)
            self.narrator.note(f"signed by {name}")
        assert signed.receipt is not None
        self.narrator.note(f"registered: ledger entry {signed.receipt.seq}")
        return signed.id

    def _import_keys(self, contract_id: str, packages: list[_Sealed]) -> None:
        from sealroom.attest.measure import measure_runtime
        from sealroom.contract.store import load_contract
        from sealroom.kms.models import ReleasePolicy
        from sealroom.kms.service import KeyService

        assert self.ws is not None
        contract = load_contract(self.ws, contract_id).contract
        with KeyService(self.ws) as service:
            for package in packages:
                policy = ReleasePolicy(
                    contract_id=contract_id,
                    package_digest=package.digest,
                    measurements=[measure_runtime()],
                    allow_insecure=contract.room.allow_insecure,
                    expires=contract.expires,
                )
                service.import_key(
                    package.digest, package.data_key, package.owner, contract_id, policy
                )
                self.narrator.note(f"{package.owner}: key of {package.path.name} imported")
                package.data_key = b""


def iter_metrics(outputs: Path) -> Iterator[tuple[str, float]]:
    """The released metrics as the consumer reads them, from the decrypted metrics.json
    (the public receipt carries only the contract's public metrics)."""
    path = outputs / "metrics.json"
    if not path.exists():
        return
    metrics = json.loads(path.read_bytes()).get("metrics", {})
    for name, value in sorted(metrics.items() if isinstance(metrics, dict) else []):
        if isinstance(value, int | float):
            yield name, float(value)
