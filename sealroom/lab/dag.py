"""The job graph: cycle detection for plans and the rule that settles a waiting job.

Pure functions over ids and statuses, so the scheduler, the store and the property tests
share one statement of the rule: a failed or cancelled dependency cancels each dependant
that does not say ``allow_failure``; an ``allow_failure`` dependant runs once every
dependency is terminal; any other job runs once every dependency succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sealroom.lab.spec import TERMINAL

BROKEN: frozenset[str] = frozenset({"failed", "cancelled"})


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle as a path ``[a, b, a]`` (``a`` depends on ``b``, which depends on ``a``), or None.

    Iterative depth-first search (a plan holds up to 1000 jobs; no recursion limit to hit).
    Names absent from ``edges`` are leaves.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in edges:
        if state.get(root):
            continue
        path: list[str] = [root]
        stack: list[list[str]] = [list(edges.get(root, ()))]
        state[root] = 1
        while stack:
            if not stack[-1]:
                stack.pop()
                state[path.pop()] = 2
                continue
            nxt = stack[-1].pop()
            mark = state.get(nxt)
            if mark == 1:
                return [*path[path.index(nxt) :], nxt]
            if mark == 2:
                continue
            state[nxt] = 1
            path.append(nxt)
            stack.append(list(edges.get(nxt, ())))
    return None


def describe_cycle(cycle: list[str]) -> str:
    return "job " + " -> ".join(cycle)


@dataclass(frozen=True)
class Verdict:
    """What a waiting job should become: ``wait``, ``ready`` or ``cancel`` (with the cause)."""

    action: str
    cause: str = ""


def settle(allow_failure: bool, dependencies: Mapping[str, str]) -> Verdict:
    """Apply the dependency rule to one job given ``{dependency id: status}``.

    The first broken dependency (in id order) is named, so the reason is stable.
    """
    if not allow_failure:
        for dep in sorted(dependencies, key=_order):
            if dependencies[dep] in BROKEN:
                return Verdict("cancel", f"dependency {dep} {dependencies[dep]}")
        if all(status == "succeeded" for status in dependencies.values()):
            return Verdict("ready")
        return Verdict("wait")
    if all(status in TERMINAL for status in dependencies.values()):
        return Verdict("ready")
    return Verdict("wait")


def _order(job_id: str) -> tuple[int, str]:
    number = job_id.rpartition("-")[2]
    return (int(number), job_id) if number.isdigit() else (0, job_id)
