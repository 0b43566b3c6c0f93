"""What the end-to-end tests share: a quiet narrator, a played story, the plaintext scan.

A plain module (not the conftest) so that test files import it by its package path.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sealroom.room.events import RoomEvent
from sealroom.room.story import StoryResult
from sealroom.workspace import Workspace

MARKER_BYTES = 64
MAX_SCAN_BYTES = 64 << 20


class QuietNarrator:
    """A narrator that keeps the room's events for the test to look at."""

    def __init__(self) -> None:
        self.events: list[RoomEvent] = []

    def step(self, title: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    @contextmanager
    def bytes(self, label: str, total: int) -> Iterator[Callable[[int], None]]:
        yield lambda n: None

    @contextmanager
    def room(self) -> Iterator[Callable[[RoomEvent], None]]:
        yield self.events.append


@dataclass
class PlayedStory:
    base: Path
    ws: Workspace
    result: StoryResult
    narrator: QuietNarrator
    markers: list[bytes]
    tmpdir: Path

    def leaks(self, *extra: Path) -> list[str]:
        """Files under the workspace, the consumer's folder and temp dirs holding plaintext."""
        roots = [self.ws.home, self.base / "consumer-lab", self.tmpdir, *extra]
        return scan_for_plaintext(roots, self.markers)


def plaintext_markers(data_dir: Path) -> list[bytes]:
    """Distinctive 64-byte runs of the provider's files: as stored (gzip) and as IDX images."""
    markers = []
    for path in sorted(data_dir.iterdir()):
        raw = path.read_bytes()
        markers.append(raw[len(raw) // 2 : len(raw) // 2 + MARKER_BYTES])
        if path.name.startswith("train-images"):
            images = gzip.decompress(raw) if path.suffix == ".gz" else raw
            middle = 16 + 28 * 28 * 100 + 28 * 10  # digit 100, rows 10–12: ink, not background
            markers.append(images[middle : middle + MARKER_BYTES])
    assert all(len(set(m)) > 8 for m in markers), "markers must be distinctive"
    return markers


def scan_for_plaintext(roots: list[Path], markers: list[bytes]) -> list[str]:
    found = []
    for root in roots:
        if not root.exists():
            continue
        for path in [root] if root.is_file() else root.rglob("*"):
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_SCAN_BYTES:
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}" for m in markers if m in data]
    return found
