"""Two small tasks for the lab's stories (restart, killed worker, timeout), registered when
this module is imported, and ``story_execute``: the real runner, on a Ray worker that
imported them first. The server process of a story imports this module too, so the
entry points below pass the store's check against the registered tasks."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sealroom.lab.attempts import ArtifactBlob, AttemptOutcome, AttemptPayload
from sealroom.lab.tasks.registry import InputFile, TaskContext, task


@task(
    "story_step",
    outputs=("out",),
    description="Write text (after an optional input's text) as an artifact, after a sleep.",
    args={
        "text": "str",
        "seconds": "float: sleep this long",
        "hold": "str: a file; wait (at most 120 s) while it exists",
        "pidfile": "str: write 'PID ATTEMPT' here first",
        "source": "InputFile",
    },
)
def story_step(
    ctx: TaskContext,
    text: str,
    seconds: float = 0.0,
    hold: str = "",
    pidfile: str = "",
    source: InputFile | None = None,
) -> dict[str, object]:
    if pidfile:  # the story kills this process, or checks it is gone
        Path(pidfile).write_text(f"{os.getpid()} {ctx.attempt}")
    deadline = time.monotonic() + 120
    while hold and Path(hold).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(seconds)
    before = source.path.read_text() if source is not None else ""
    ctx.log(f"{ctx.job_id} attempt {ctx.attempt} wrote {text!r}")
    ctx.metric("chars", len(before + text))
    return {"out": ArtifactBlob("out", "text", "out.txt", (before + text).encode())}


FIRST = """\
name: story-first
parameters:
  text: {type: str}
  seconds: {type: float, default: 0.0}
  hold: {type: str, default: ""}
  pidfile: {type: str, default: ""}
steps:
  - name: step
    task: story_step
    args:
      text: "${parameters.text}"
      seconds: "${parameters.seconds}"
      hold: "${parameters.hold}"
      pidfile: "${parameters.pidfile}"
artifacts:
  out: "${steps.step.out}"
"""

NEXT = """\
name: story-next
parameters:
  source: {type: artifact}
  text: {type: str}
  seconds: {type: float, default: 0.0}
  hold: {type: str, default: ""}
  pidfile: {type: str, default: ""}
steps:
  - name: step
    task: story_step
    args:
      text: "${parameters.text}"
      seconds: "${parameters.seconds}"
      hold: "${parameters.hold}"
      pidfile: "${parameters.pidfile}"
      source: "${parameters.source}"
artifacts:
  out: "${steps.step.out}"
"""


def story_execute(payload: AttemptPayload) -> AttemptOutcome:
    """The runner, with this module's tasks registered (importing it did that)."""
    from sealroom.lab.runner import execute

    return execute(payload)


def serve(root: str, ray_address: str | None = None) -> None:
    """The story's lab server: ``python -c 'import lab_story_tasks as s; s.serve(ROOT)'``;
    a private local Ray, or the cluster at ``ray_address``."""
    from sealroom.lab.paths import LabPaths
    from sealroom.lab.server import run_lab_server

    def ready(url: str) -> None:
        print(f"ready {url}", flush=True)

    run_lab_server(
        LabPaths(Path(root)),
        ray_address=ray_address,
        queues=None if ray_address else {"default": 2.0},
        num_cpus=None if ray_address else 2,
        execute=story_execute,
        ready=ready,
    )
