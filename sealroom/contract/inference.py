"""The inference section of a contract: who may query a provisioned model, and what they get.

A contract with ``inference`` terms is an inference contract: it names one model (its owner
provisions, rotates and retires it) and no dataset, and no training pipeline runs under it.
Everything a serving room enforces per request is here, so that the parties sign it: the
clients, the output policy, the per-client query budget (a model-extraction defence), the
request limits and the model's input signature.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sealroom.crypto.signing import raw_public_key

CLIENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
InputDtype = Literal["float32", "float64", "int64", "int32", "uint8"]
MAX_INPUT_ELEMENTS = 1 << 24  # per example: 64 MiB of float32, beyond any body limit


class _Terms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientRef(_Terms):
    """A client allowed to query: its name and Ed25519 public key (base64, raw 32 bytes)."""

    name: str = Field(pattern=CLIENT_NAME_PATTERN)
    signing_key: str

    _key = field_validator("signing_key")(raw_public_key)


class OutputPolicy(_Terms):
    """What a client learns per example: the less, the harder the model is to extract.

    ``label``: the arg-max class only. ``top_k``: the k best classes with their scores
    rounded to ``decimals``. ``probabilities``: every class score, rounded to ``decimals``.
    """

    kind: Literal["label", "top_k", "probabilities"] = "label"
    k: int = Field(default=1, ge=1, le=1000)
    decimals: int = Field(default=2, ge=0, le=6)


class InputSignature(_Terms):
    """One example as the model takes it; requests carry a batch of these."""

    name: str | None = Field(default=None, min_length=1, max_length=200)  # None: the only input
    dtype: InputDtype = "float32"
    shape: list[int] = Field(min_length=1, max_length=6)  # without the batch axis

    @field_validator("shape")
    @classmethod
    def _sizes(cls, shape: list[int]) -> list[int]:
        if any(size < 1 for size in shape):
            raise ValueError("every axis needs a size of at least 1")
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise ValueError(f"an example may hold at most {MAX_INPUT_ELEMENTS} elements")
        return shape


class ServingLimits(_Terms):
    """Per-request limits and the dynamic batcher's settings."""

    max_batch_size: int = Field(default=32, ge=1, le=1024)  # examples per model call
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)  # a batch waits this long to fill
    queue_size: int = Field(default=256, ge=1, le=65536)  # examples waiting; beyond: 503
    request_timeout_s: float = Field(default=10.0, gt=0, le=600)
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    max_examples_per_request: int = Field(default=64, ge=1, le=1024)
    requests_per_second: float = Field(default=2000.0, gt=0)  # per client address
    burst: int = Field(default=4000, ge=1)


class InferenceTerms(_Terms):
    """Who may query, what they get, how much, and in what shape."""

    open: bool = False  # anyone may query (anonymous); else only ``clients``
    clients: list[ClientRef] = Field(default_factory=list)
    output: OutputPolicy = Field(default_factory=OutputPolicy)
    # Examples each client may have answered over the contract's life; under ``open`` all
    # anonymous clients share one budget (there is nobody else to count). None: unlimited.
    query_budget: int | None = Field(default=None, gt=0)
    limits: ServingLimits = Field(default_factory=ServingLimits)
    input: InputSignature

    @model_validator(mode="after")
    def _who(self) -> InferenceTerms:
        if self.open and self.clients:
            raise ValueError("an open contract lists no clients (anyone may query)")
        if not self.open and not self.clients:
            raise ValueError("list the clients who may query, or set open: true")
        names = [c.name for c in self.clients]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"client {dupes[0]!r} is listed twice")
        keys = [c.signing_key for c in self.clients]
        if len(set(keys)) != len(keys):
            raise ValueError("two clients share one signing key")
        return self

    def client(self, name: str) -> ClientRef:
        """The client called ``name``; KeyError if it is not listed."""
        for client in self.clients:
            if client.name == name:
                return client
        raise KeyError(name)
