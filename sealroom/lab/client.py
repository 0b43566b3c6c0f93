"""LabClient: the lab API over HTTP, one method per route. The CLI sits on it.

Every refusal the server makes comes back as :class:`~sealroom.errors.LabError` carrying
the server's one line; an unreachable server says how to start one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from sealroom.errors import LabError
from sealroom.httpguard import HttpGuardError, read_token
from sealroom.lab.paths import LabPaths

RATE_RETRIES = 3
MAX_RETRY_WAIT_S = 5.0
NO_SERVER = "no lab server running; start one with `sealroom lab start`"
JsonDict = dict[str, Any]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def read_server_file(paths: LabPaths) -> tuple[str, int]:
    """(url, pid) of the running ``sealroom lab start``; LabError when none runs."""
    try:
        data = json.loads(paths.server_file.read_text(encoding="utf-8"))
        url, pid = str(data["url"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        raise LabError(NO_SERVER) from None
    if pid <= 0 or not _pid_alive(pid):
        raise LabError(NO_SERVER)
    return url, pid


class LabClient:
    """``LabClient(url, token)``, or :meth:`from_workspace` for the server this workspace runs."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"authorization": f"Bearer {token}"}
        if http is None:
            http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout, connect=5.0))
        http.headers.update(headers)
        self._http = http

    @classmethod
    def from_workspace(cls, paths: LabPaths, timeout: float = 30.0) -> LabClient:
        url, _ = read_server_file(paths)
        try:
            token = read_token(paths.token_file)
        except HttpGuardError as exc:
            raise LabError(str(exc)) from None
        return cls(url, token, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for tries_left in range(RATE_RETRIES, -1, -1):
            try:
                response = self._http.request(method, "/v1" + path, **kwargs)
            except httpx.TimeoutException:
                raise LabError(f"lab server at {self.url} did not answer in time") from None
            except httpx.HTTPError:
                raise LabError(f"{NO_SERVER} (nothing answers at {self.url})") from None
            # A read refused by the rate limit is asked again after the wait the server
            # names (bounded); a refused write is reported, never repeated behind your back.
            if response.status_code != 429 or method != "GET" or not tries_left:
                break
            time.sleep(_retry_after(response))
        if response.status_code >= 400:
            raise LabError(_refusal(response))
        return response

    def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._request("GET", path, params=clean).json()

    def _post(self, path: str, body: Any = None) -> Any:
        return self._request("POST", path, json=body if body is not None else {}).json()

    # ------------------------------------------------------------------ routes

    def health(self) -> bool:
        try:
            return self._http.get("/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    def status(self) -> JsonDict:
        return dict(self._get("/status"))

    def create_experiment(self, name: str, description: str = "") -> JsonDict:
        return dict(self._post("/experiments", {"name": name, "description": description}))

    def list_experiments(self) -> list[JsonDict]:
        return list(self._get("/experiments"))

    def get_experiment(self, name: str) -> JsonDict:
        return dict(self._get(f"/experiments/{_segment(name)}"))

    def add_entry_point(self, text: str) -> JsonDict:
        return dict(self._post("/entrypoints", {"text": text}))

    def list_entry_points(self) -> list[JsonDict]:
        return list(self._get("/entrypoints"))

    def get_entry_point(self, name: str, version: int | None = None) -> JsonDict:
        return dict(self._get(f"/entrypoints/{_segment(name)}", version=version))

    def list_tasks(self) -> list[JsonDict]:
        return list(self._get("/tasks"))

    def add_queue(self, name: str, description: str = "") -> JsonDict:
        return dict(self._post("/queues", {"name": name, "description": description}))

    def list_queues(self) -> list[JsonDict]:
        return list(self._get("/queues"))

    def list_workers(self) -> list[JsonDict]:
        return list(self._get("/workers"))

    def submit_job(self, request: JsonDict) -> JsonDict:
        """``request`` is a :class:`~sealroom.lab.spec.JobRequest` as JSON."""
        return dict(self._post("/jobs", request))

    def submit_plan(self, plan: JsonDict) -> list[JsonDict]:
        """``plan`` is a :class:`~sealroom.lab.spec.Plan` as JSON; all jobs or none."""
        return list(self._post("/plans", plan))

    def list_jobs(self, experiment: str | None = None, status: str | None = None) -> list[JsonDict]:
        return list(self._get("/jobs", experiment=experiment, status=status))

    def get_job(self, job_id: str) -> JsonDict:
        return dict(self._get(f"/jobs/{_segment(job_id)}"))

    def cancel_job(self, job_id: str) -> JsonDict:
        return dict(self._post(f"/jobs/{_segment(job_id)}/cancel"))

    def rerun_job(self, job_id: str) -> JsonDict:
        return dict(self._post(f"/jobs/{_segment(job_id)}/rerun"))

    def attempts(self, job_id: str) -> list[JsonDict]:
        return list(self._get(f"/jobs/{_segment(job_id)}/attempts"))

    def logs(self, job_id: str, attempt: int | None = None) -> str:
        return str(self._get(f"/jobs/{_segment(job_id)}/logs", attempt=attempt)["text"])

    def artifacts(self, job_id: str) -> list[JsonDict]:
        return list(self._get(f"/jobs/{_segment(job_id)}/artifacts"))

    def download_artifact(self, job_id: str, name: str, dest: Path) -> Path:
        """Stream an artifact into ``dest`` (a file, or a folder to hold it under its file
        name); the bytes must match the sha256 the server recorded at commit."""
        route = f"/v1/jobs/{_segment(job_id)}/artifacts/{_segment(name)}"
        try:
            with self._http.stream("GET", route) as response:
                if response.status_code >= 400:
                    response.read()
                    raise LabError(_refusal(response))
                target = dest / _filename(response, name) if dest.is_dir() else dest
                expected = response.headers.get("x-sealroom-sha256", "")
                _save(response, target, expected, f"artifact {name} of {job_id}")
        except httpx.HTTPError:
            raise LabError(f"{NO_SERVER} (nothing answers at {self.url})") from None
        return target

    def list_models(self) -> list[JsonDict]:
        return list(self._get("/models"))

    def compare(self, job_ids: list[str], names: list[str] | None = None) -> list[JsonDict]:
        """Metric rows across jobs: job, entry_point, parameters, metric, step, value."""
        joined = ",".join(names) if names else None
        return list(self._get("/metrics", jobs=",".join(job_ids), names=joined))


def _segment(value: str) -> str:
    """A path segment, escaped so a name can never climb out of its route."""
    from urllib.parse import quote

    return quote(value, safe="")


def _refusal(response: httpx.Response) -> str:
    try:
        body = response.json()
        text = body.get("detail") or body.get("error") if isinstance(body, dict) else None
    except ValueError:
        text = None
    line = " ".join(str(text or response.reason_phrase or "refused").split())
    if response.status_code == 429:
        line += f" (retry after {response.headers.get('retry-after', '?')} s)"
    if response.status_code == 401:
        line = f"lab server refused this client's token: {line}"
    return line


def _retry_after(response: httpx.Response) -> float:
    try:
        wait = float(response.headers.get("retry-after", "1"))
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.1), MAX_RETRY_WAIT_S)


def _filename(response: httpx.Response, fallback: str) -> str:
    disposition = response.headers.get("content-disposition", "")
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename":
            name = Path(value.strip('"')).name
            if name and name not in (".", ".."):
                return name
    return fallback


def _save(response: httpx.Response, target: Path, expected: str, what: str) -> None:
    """Write to a temporary file beside ``target``, check the digest, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in response.iter_bytes():
                digest.update(chunk)
                handle.write(chunk)
        if expected and digest.hexdigest() != expected:
            raise LabError(f"{what}: downloaded bytes do not match the recorded sha256")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
