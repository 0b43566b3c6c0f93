"""``sealroom lab start``: the lab's one server process for a workspace.

It holds an exclusive lock on ``lab/server.lock`` for its life (a second server on the same
workspace is refused; the kernel drops the lock when the process dies, even on kill -9),
starts a :class:`RayEngine` (a private local Ray unless ``ray_address`` joins a cluster)
and a :class:`LabService` (recovering what a crash left running), then serves the REST API
on loopback behind :mod:`sealroom.httpguard` with a fresh bearer token in
``lab/token`` (0600). ``lab/server.json`` says where it listens (``url``, ``pid``, and
``ray_address``, for ``sealroom lab worker start --address``); it is removed on a clean
stop (SIGTERM, SIGINT) and overwritten by the next start after a crash.

Killed (-9), the server takes its local Ray along: Ray starts GCS and raylet with the
parent-death signal set and workers exit when their raylet does, so no process keeps
running an old attempt (seen in tests/lab/test_lab_restart.py: worker, raylet and GCS gone
about 2 s after the kill). Ray's dashboard and runtime-env agents linger up to about a
minute (they run no task); killing the server's process group removes them at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from sealroom.errors import LabError
from sealroom.httpguard import check_loopback, write_token
from sealroom.lab.engine_ray import Execute, RayEngine
from sealroom.lab.extras import require_lab_extra
from sealroom.lab.paths import LabPaths
from sealroom.lab.service import LabService, RecordsAttempts

log = logging.getLogger("sealroom.lab")


def run_lab_server(
    paths: LabPaths,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ray_address: str | None = None,
    queues: dict[str, float] | None = None,
    tracking_uri: str | None = None,
    ready: Callable[[str], None] | None = None,
    execute: Execute | None = None,
    num_cpus: int | None = None,
) -> None:
    """Serve the lab until SIGTERM/SIGINT; see the module docstring. ``ready(url)`` is
    called once requests are accepted. ``execute`` replaces the runner (tests)."""
    from sealroom.lab.api import create_app, guard_settings
    from sealroom.serve.hosting import serve_on_socket

    check_loopback(host)
    require_lab_extra()
    paths.create()
    with _server_lock(paths), _listening(host, port) as sock:
        bound = sock.getsockname()[1]
        url = f"http://{'[::1]' if ':' in host else host}:{bound}"
        token = write_token(paths.token_file)
        settings = guard_settings(bound, token)
        engine = RayEngine(ray_address, queues, num_cpus, execute=execute)
        try:
            service = LabService(paths, engine, _tracker(paths, tracking_uri))
        except BaseException:
            engine.shutdown()
            raise
        service.start()
        try:
            app = create_app(service, settings)

            def started() -> None:
                about = {"url": url, "pid": os.getpid(), "ray_address": engine.address}
                _write_json(paths.server_file, about)
                if ready is not None:
                    ready(url)

            serve_on_socket(app, sock, started)
        finally:
            with contextlib.suppress(FileNotFoundError):
                if _read_pid(paths.server_file) == os.getpid():
                    paths.server_file.unlink()
            service.stop()


def _tracker(paths: LabPaths, tracking_uri: str | None) -> RecordsAttempts | None:
    try:
        from sealroom.lab.tracking import Tracker
    except ImportError:  # tracking not installed with this build: jobs still run
        log.warning("MLflow tracking unavailable: sealroom.lab.tracking not importable")
        return None
    return Tracker(tracking_uri or paths.default_tracking_uri, paths.mlflow_artifacts)


@contextlib.contextmanager
def _server_lock(paths: LabPaths) -> Iterator[IO[str]]:
    lock_path = paths.root / "server.lock"
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the server's life
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            where = _read_url(paths.server_file)
            raise LabError(
                f"a lab server already runs for {paths.root}{f' at {where}' if where else ''}"
                " (sealroom lab stop first)"
            ) from None
        yield handle
    finally:
        handle.close()


@contextlib.contextmanager
def _listening(host: str, port: int) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise LabError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.listen(128)
        sock.set_inheritable(False)
        yield sock
    finally:
        sock.close()


def _write_json(path: Path, data: dict[str, object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_server(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_pid(path: Path) -> int | None:
    pid = _read_server(path).get("pid")
    return pid if isinstance(pid, int) else None


def _read_url(path: Path) -> str | None:
    url = _read_server(path).get("url")
    return url if isinstance(url, str) else None
