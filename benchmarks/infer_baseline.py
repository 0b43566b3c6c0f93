"""The baseline the inference benchmark compares against: plain ONNX Runtime behind the same
HTTP stack, with no crypto.

Same FastAPI app hardening (sealroom.httpguard.hardened_app), same uvicorn, same
ModelEngine (ONNX Runtime, one thread), same DynamicBatcher and output policy as the
sealroom server; the body is the raw float32 examples and the answer plain JSON. What is
left out is exactly what sealroom adds: HPKE open/seal, the client signature, replay and
budget checks, receipts and their Merkle batch signature.
"""

from __future__ import annotations

import math

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sealroom.contract.inference import InputSignature, OutputPolicy, ServingLimits
from sealroom.httpguard import GuardSettings, RateLimit, hardened_app
from sealroom.serve.batching import DynamicBatcher
from sealroom.serve.engine import ModelEngine
from sealroom.serve.output_policy import apply_output_policy

TOKEN = "baseline-bench-token-not-a-secret"  # /v1/infer is public, as sealroom's is


def baseline_app(
    onnx: bytes, shape: tuple[int, ...], port: int, limits: ServingLimits, threads: int = 1
) -> FastAPI:
    """The plain server for ``onnx`` on ``127.0.0.1:port``: ``POST /v1/infer`` float32 bytes."""
    signature = InputSignature(dtype="float32", shape=list(shape))
    engine = ModelEngine.from_bytes(onnx, signature, threads=threads)
    batcher: DynamicBatcher[np.ndarray, np.ndarray] = DynamicBatcher(
        lambda arrays: _run_batch(engine, arrays),
        max_batch_size=limits.max_batch_size,
        max_wait_ms=limits.max_wait_ms,
        queue_size=limits.queue_size,
        timeout_s=limits.request_timeout_s,
    )
    policy = OutputPolicy(kind="label")
    example_bytes = 4 * math.prod(shape)
    rate = RateLimit(limits.requests_per_second, limits.burst)
    settings = GuardSettings.for_loopback(
        port, TOKEN, public_paths=["/v1/infer"], max_body_bytes=limits.max_body_bytes,
        per_client=rate, overall=rate,
    )  # fmt: skip
    app = hardened_app("baseline inference", settings)

    app.router.on_shutdown.append(batcher.stop)

    @app.post("/v1/infer")
    async def infer(request: Request) -> Response:
        body = await request.body()
        count, rest = divmod(len(body), example_bytes)
        if rest or not 1 <= count <= limits.max_examples_per_request:
            return JSONResponse({"error": "body is not 1..N float32 examples"}, status_code=422)
        array = np.frombuffer(body, dtype=np.float32).reshape(count, *shape)
        logits = await batcher.submit(array, count)
        return JSONResponse({"outputs": apply_output_policy(policy, logits)})

    return app


def _run_batch(engine: ModelEngine, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """One model call for the whole batch, split back per request (as sealroom does)."""
    logits = engine.run(np.concatenate(arrays) if len(arrays) > 1 else arrays[0])
    bounds = np.cumsum([len(a) for a in arrays])[:-1]
    return list(np.split(logits, bounds))
