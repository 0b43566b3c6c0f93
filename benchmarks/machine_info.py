"""One line describing the machine a benchmark ran on (printed first by every script)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """CPU, core count, OS, Python, torch threads (when torch is loaded) and the load average."""
    parts = [
        cpu_name(),
        f"{os.cpu_count()} logical CPUs",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
    ]
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    parts.append(f"load average {os.getloadavg()[0]:.1f}")
    return "; ".join(parts)
