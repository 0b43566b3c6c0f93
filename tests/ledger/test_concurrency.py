"""Several processes appending at once never fork the chain."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from sealroom.ledger import Ledger
from sealroom.workspace import Workspace

PROCESSES = 4
APPENDS = 15


def _worker(home: str, worker: int) -> None:
    with Ledger.open(Workspace(Path(home))) as ledger:
        for i in range(APPENDS):
            ledger.append("run.started", {"worker": worker, "i": i})


def test_concurrent_appends_from_processes_keep_one_contiguous_chain(
    workspace: Workspace,
) -> None:
    # No ledger yet: the processes also race to create the key and the schema.
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(workspace.home), w)) for w in range(PROCESSES)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    with Ledger.open(workspace) as ledger:
        total = PROCESSES * APPENDS
        assert ledger.verify() == total
        entries = ledger.entries()
        assert [e.seq for e in entries] == list(range(1, total + 1))
        for worker in range(PROCESSES):
            mine = [e.payload["i"] for e in entries if e.payload["worker"] == worker]
            assert mine == list(range(APPENDS))  # each process's appends stay in its order
