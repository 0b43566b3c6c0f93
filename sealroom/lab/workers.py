"""``sealroom lab worker start``: join a machine to the lab's Ray cluster as a worker for
one queue. It is ``ray start --address ADDR --resources '{"queue:Q": N}' --block``: the
node advertises N slots of the queue (the resource every attempt on Q asks one unit of),
and the command runs in the foreground until interrupted, when it stops the node.

Ray's token authentication: the worker needs the cluster's token, read from
``~/.ray/auth_token`` (the same file the lab server's Ray wrote on a one-machine setup) or
the ``RAY_AUTH_TOKEN`` environment variable; copy it to a second machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from sealroom.errors import LabError

QUEUE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
ADDRESS = re.compile(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}")


def worker_command(
    address: str, queue: str, slots: int = 1, num_cpus: int | None = None
) -> list[str]:
    """The ``ray start`` command line, with each argument checked first."""
    if not ADDRESS.fullmatch(address):
        raise LabError(f"worker address {address!r} is not HOST:PORT (the lab's Ray address)")
    if not QUEUE_NAME.fullmatch(queue):
        raise LabError(f"queue name {queue!r}: use lower-case letters, digits, '_', '.', '-'")
    if not 1 <= slots <= 1024:
        raise LabError(f"--slots {slots}: a worker takes 1 to 1024 jobs at a time")
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--address", address]
    command += ["--resources", json.dumps({f"queue:{queue}": slots}), "--block"]
    command += ["--num-cpus", str(num_cpus if num_cpus is not None else slots)]
    return command


def start_worker(address: str, queue: str, slots: int = 1, num_cpus: int | None = None) -> None:
    """Run a worker node in the foreground until Ctrl-C or SIGTERM (``ray start --block``
    stops its node then). Raises LabError when Ray refuses to start or join."""
    command = worker_command(address, queue, slots, num_cpus)
    try:
        code = subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:
        return
    except OSError as exc:
        raise LabError(f"cannot run ray start: {exc}") from None
    if code not in (0, -2, -15, 130, 143):
        raise LabError(f"ray start --address {address} exited with status {code}")
