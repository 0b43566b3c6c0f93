"""Nothing private on any page: every route of the dashboard, scanned for planted canaries.

The shared private MNIST story (``dp_story``) is played with a canary string planted in the
hospital's raw images before they are sealed (so it went through sealing, the key service
and the room's training in memory). The dashboard then serves that workspace (with the
consumer's decrypted outputs given as ``--outputs``), the inference demo's and the testbed
demo's. Every route of the app (from ``app.routes``: pages, ``/api/`` JSON, live fragments,
server-sent events read for a bounded time, static files) is fetched through a real server,
its parameters filled from the pages' links and the workspace's ids. No response, headers
included, may hold the canary, a 64-byte run of the raw data files, or any secret of the
workspaces (party private keys, KMS root key, ledger and attestation keys, the dashboard's
token, the serve stats token) in raw, base64 or hex form. A route that no workspace can
fill, or that never answered 200, fails the test by name: a new page cannot escape the scan.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sealroom.room.story import DEMO_PASSPHRASE, StoryResult
from sealroom.ui.app import create_app
from sealroom.workspace import Workspace
from tests.e2e.stories import plaintext_markers, scan_for_plaintext
from tests.ui.canaries import (
    DP_STORY_CANARY,
    IMAGES,
    Secret,
    forms_of,
    homes_under,
    leaks,
    workspace_secrets,
)
from tests.ui.routes import Walk, http_getter, page_routes, static_urls, walk, workspace_seeds
from tests.ui.serving import TOKEN, live_server, settings
from tests.ui.summary import add_summary


@dataclass(frozen=True)
class CanaryWorld:
    ws: Workspace
    outputs: Path  # the consumer's decrypted outputs, as `sealroom ui --outputs` takes them
    raw_data: Path  # the provider's raw files, canary planted
    canary: bytes


@pytest.fixture(scope="module")
def canary_world(dp_story: StoryResult, tmp_path_factory: pytest.TempPathFactory) -> CanaryWorld:
    """The shared private MNIST story, whose raw images carry the session's canary; its
    decrypted outputs copied where ``sealroom ui --outputs`` looks (one folder per run)."""
    outputs = tmp_path_factory.mktemp("viewer-outputs")
    shutil.copytree(dp_story.outputs, outputs / dp_story.receipt.run_id)
    raw = dp_story.home.parent / "provider-hospital" / "mnist"
    return CanaryWorld(Workspace.find(dp_story.home), outputs, raw, DP_STORY_CANARY)


@pytest.fixture(scope="module")
def sources(
    canary_world: CanaryWorld, inference_demo: Path, testbed_demo: Path
) -> list[tuple[Workspace, tuple[Path, ...]]]:
    """The workspaces served in turn, each with the outputs its consumer decrypted: between
    them, every page has something to show (the inference demo's run released plots)."""
    return [
        (canary_world.ws, (canary_world.outputs,)),
        (
            Workspace.find(inference_demo / "workspace"),
            tuple(sorted(inference_demo.glob("consumer-*/outputs"))),
        ),
        (Workspace.find(testbed_demo), ()),
    ]


@pytest.fixture(scope="module")
def secrets_(canary_world: CanaryWorld, inference_demo: Path, testbed_demo: Path) -> list[Secret]:
    """Everything that must not appear: the canary, runs of the raw data, the token, and
    every secret of every workspace in the three demo folders (parties' own homes too)."""
    found = [
        forms_of("planted canary", canary_world.canary),
        forms_of("dashboard token", TOKEN.encode()),
    ]
    found += [
        Secret(f"raw data run {i}", (m,))
        for i, m in enumerate(plaintext_markers(canary_world.raw_data))
    ]
    folders = [canary_world.ws.home.parent, inference_demo, testbed_demo]
    for ws in [home for folder in folders for home in homes_under(folder)]:
        found += [
            Secret(f"{ws.home.name}: {s.name}", s.forms)
            for s in workspace_secrets(ws, DEMO_PASSPHRASE)
        ]
    return found


@pytest.fixture(scope="module")
def walks(
    sources: list[tuple[Workspace, tuple[Path, ...]]],
) -> Iterator[list[tuple[Workspace, Walk]]]:
    done = []
    for ws, outputs in sources:
        app = create_app(settings(ws, outputs=outputs))
        routes, files = page_routes(app), tuple(static_urls(app))
        with live_server(ws, outputs) as url, httpx.Client(base_url=url) as client:
            done.append((ws, walk(routes, http_getter(client), workspace_seeds(ws), first=files)))
    yield done


def test_the_canary_went_into_the_sealed_data(canary_world: CanaryWorld) -> None:
    """Control: the canary is in the raw data the room trained on (the scan sees it there),
    and only sealed in the workspace."""
    import gzip

    raw = gzip.decompress((canary_world.raw_data / IMAGES).read_bytes())
    assert leaks(raw, [forms_of("planted canary", canary_world.canary)]) == ["planted canary"]
    assert scan_for_plaintext([canary_world.ws.packages], [canary_world.canary]) == []


def test_every_route_is_scanned(
    walks: list[tuple[Workspace, Walk]], sources: list[tuple[Workspace, tuple[Path, ...]]]
) -> None:
    app = create_app(settings(sources[0][0]))
    names = {r.name for r in page_routes(app)}
    answered = {name for _, done in walks for name in names if done.answered(name)}
    missing = sorted(names - answered)
    detail = {n: [done.unfilled.get(n) for _, done in walks] for n in missing}
    assert not missing, f"routes no workspace could fill or that never answered 200: {detail}"


def test_no_page_or_endpoint_shows_anything_private(
    walks: list[tuple[Workspace, Walk]], secrets_: list[Secret], request: pytest.FixtureRequest
) -> None:
    found = [
        f"{ws.home.parent.name}/{ws.home.name} {url}: {name}"
        for ws, done in walks
        for url, fetched in done.fetched.items()
        for name in leaks(fetched.body + b"\n" + fetched.headers, secrets_)
    ]
    assert not found, "private values in responses:\n" + "\n".join(found)
    urls = sum(len(done.fetched) for _, done in walks)
    assert urls >= 3
    line = f"canary scan: {urls} responses from {len(walks)} workspaces, {len(secrets_)} secrets"
    print(line)
    add_summary(request.config, [line])
