"""Kernel-enforced confinement of a room process: Landlock, seccomp, rlimits, scrubbed env.

The launcher starts the room with :func:`scrubbed_environment` in a :func:`private_workdir`;
the room calls :func:`confine` with a :class:`SandboxPolicy` built from
:func:`python_runtime_paths` plus its request's files, before it imports torch or reads data.
See docs/sandbox.md.
"""

from sealroom.sandbox.confine import SandboxPolicy, SandboxReport, confine, limit_memory_growth
from sealroom.sandbox.landlock_rules import landlock_abi
from sealroom.sandbox.runtime import (
    device_paths,
    private_workdir,
    python_runtime_paths,
    scrubbed_environment,
)

__all__ = [
    "SandboxPolicy",
    "SandboxReport",
    "confine",
    "device_paths",
    "landlock_abi",
    "limit_memory_growth",
    "private_workdir",
    "python_runtime_paths",
    "scrubbed_environment",
]
