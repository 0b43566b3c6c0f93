"""KmsClient: the key service protocol over HTTP, with the same methods as KeyService."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from sealroom.errors import BudgetExceeded, KeyReleaseDenied, PrivacyError, SealroomError
from sealroom.httpguard import read_token
from sealroom.kms.models import BudgetReserve, BudgetSettle, ReleaseRequest

_Call = TypeVar("_Call", BudgetReserve, BudgetSettle)

TOKEN_ENV = "SEALROOM_KMS_TOKEN"  # noqa: S105 (variable names, not secrets)
TOKEN_FILE_ENV = "SEALROOM_KMS_TOKEN_FILE"  # noqa: S105


class KmsUnavailable(SealroomError):
    """The key service could not be reached or answered something unexpected."""


def resolve_token(token: str | None, token_file: Path | None) -> str | None:
    """The client token: ``token``, else $SEALROOM_KMS_TOKEN, else ``token_file``, else the
    file named by $SEALROOM_KMS_TOKEN_FILE; None when there is none (every call but the
    health check is then refused with 401)."""
    if token:
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    if token_file is None and os.environ.get(TOKEN_FILE_ENV):
        token_file = Path(os.environ[TOKEN_FILE_ENV])
    return read_token(token_file) if token_file is not None else None


class KmsClient:
    """``KmsClient("http://127.0.0.1:8700", token_file=ws.keys / "kms-token")``; usable
    wherever a KeyService is."""

    def __init__(
        self,
        url: str,
        timeout: float = 30.0,
        token: str | None = None,
        token_file: Path | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        secret = resolve_token(token, token_file)
        headers = {"authorization": f"Bearer {secret}"} if secret else {}
        self._http = httpx.Client(base_url=self.url + "/v1", timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KmsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, content: bytes | None = None) -> httpx.Response:
        return self._send("POST", path, content=content)

    def _send(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request; KmsUnavailable for a service that is unreachable, refuses the token
        (401) or is busy (429), whatever the route."""
        headers = {"content-type": "application/json"} if method == "POST" else {}
        try:
            response = self._http.request(
                method, path, content=content, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise KmsUnavailable(f"key service at {self.url} is unreachable: {exc}") from None
        if response.status_code == 401:
            raise KmsUnavailable(
                f"key service at {self.url} refused this client's token (HTTP 401): give "
                f"KmsClient a token or token file, or set {TOKEN_ENV} or {TOKEN_FILE_ENV}"
            )
        if response.status_code == 429:
            raise KmsUnavailable(
                f"key service at {self.url} is busy: {_error(response)} "
                f"(retry after {response.headers.get('retry-after', '?')} s)"
            )
        return response

    def _require_ok(self, response: httpx.Response, what: str) -> None:
        if response.status_code != 200:
            raise KmsUnavailable(
                f"key service at {self.url}: {what}: HTTP {response.status_code}: "
                f"{_error(response)}"
            )

    def health(self) -> bool:
        try:
            return self._http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def request_nonce(self) -> bytes:
        response = self._post("/nonce")
        if response.status_code != 200:
            raise KmsUnavailable(f"key service at {self.url}: nonce: HTTP {response.status_code}")
        return base64.b64decode(response.json()["nonce"])

    def release(self, request: ReleaseRequest) -> bytes:
        response = self._post("/release", request.model_dump_json().encode("utf-8"))
        if response.status_code == 403:
            raise KeyReleaseDenied(str(response.json().get("denied", "denied")))
        self._require_ok(response, "release")
        return base64.b64decode(response.json()["sealed_key"])

    # ------------------------------------------------------------------ budgets

    def reserve(self, run_id: str, contract_id: str, epsilon: float, delta: float) -> list[str]:
        """Reserve (ε, δ) for ``run_id`` in the key service's own budget book; the datasets
        reserved on. BudgetExceeded or PrivacyError when the key service refuses."""
        call = _budget_call(
            BudgetReserve, run_id=run_id, contract_id=contract_id, epsilon=epsilon, delta=delta
        )
        body = self._budget("/budget/reserve", call.model_dump_json().encode("utf-8"))
        return [str(d) for d in body["datasets"]]

    def settle(self, run_id: str, contract_id: str, spent_epsilon: float) -> float:
        """Settle ``run_id``'s reservation; the ε the key service charged (all it reserved
        once a key was released to the run)."""
        call = _budget_call(
            BudgetSettle, run_id=run_id, contract_id=contract_id, spent_epsilon=spent_epsilon
        )
        body = self._budget("/budget/settle", call.model_dump_json().encode("utf-8"))
        return float(body["charged_epsilon"])

    def budgets(self, dataset: str | None = None) -> list[dict[str, Any]]:
        """The budgets this key service keeps (as ``sealroom budget show --json`` lists them)."""
        response = self._send("GET", "/budget", params={"dataset": dataset} if dataset else {})
        self._require_ok(response, "budget")
        listed = response.json()
        if not isinstance(listed, list):
            raise KmsUnavailable(f"key service at {self.url}: budget: not a list")
        return listed

    def _budget(self, path: str, content: bytes) -> dict[str, Any]:
        response = self._post(path, content)
        if response.status_code == 409:
            body = response.json()
            error = BudgetExceeded if body.get("error_type") == "BudgetExceeded" else PrivacyError
            raise error(f"key service at {self.url}: {str(body.get('refused', ''))[:300]}")
        self._require_ok(response, path.strip("/"))
        body = response.json()
        if not isinstance(body, dict):
            raise KmsUnavailable(f"key service at {self.url}: {path.strip('/')}: not an object")
        return body


def _budget_call(model: type[_Call], **fields: Any) -> _Call:
    """The request body, or PrivacyError naming the bad field (NaN, negative ε, odd run id)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PrivacyError(f"budget request: {where}: {first['msg']}") from None


def _error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error", "") if isinstance(body, dict) else body)[:200]
