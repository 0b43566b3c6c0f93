"""KmsClient: the key service protocol over HTTP, with the same methods as KeyService."""

from __future__ import annotations

import base64

import httpx

from sealroom.errors import KeyReleaseDenied, SealroomError
from sealroom.kms.models import ReleaseRequest


class KmsUnavailable(SealroomError):
    """The key service could not be reached or answered something unexpected."""


class KmsClient:
    """``KmsClient("http://127.0.0.1:8700")``; usable wherever a KeyService is."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url + "/v1", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KmsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, path: str, content: bytes | None = None) -> httpx.Response:
        try:
            return self._http.post(
                path, content=content, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise KmsUnavailable(f"key service at {self.url} is unreachable: {exc}") from None

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
        if response.status_code != 200:
            raise KmsUnavailable(
                f"key service at {self.url}: release: HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        return base64.b64decode(response.json()["sealed_key"])
