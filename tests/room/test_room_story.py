"""Scenario descriptions: every shipped story loads; bad ones are refused with the file named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealroom.errors import ConfigError
from sealroom.room.events import RoomEvent
from sealroom.room.story import available_scenarios, load_scenario


def test_shipped_scenarios_load() -> None:
    names = available_scenarios()
    assert {"mnist", "dp-mnist"} <= set(names)
    for name in names:
        scenario = load_scenario(name)
        assert (scenario.folder / scenario.contract).exists()
        assert scenario.providers


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"known: .*mnist"):
        load_scenario("nope")


def test_steps_must_be_scenario_modules(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "story.yaml").write_text(
        "title: t\nconsumer: lab\noperator: op\n"
        "providers: [{party: h, dataset: d, prepare: [os.system, rm]}]\n"
    )
    with pytest.raises(ConfigError, match=r"story\.yaml"):
        load_scenario("bad", root=tmp_path)


def test_events_survive_the_json_line_and_junk_is_ignored() -> None:
    event = RoomEvent(type="batch", epoch=1, epochs=2, batch=3, batches=4)
    assert RoomEvent.from_line(event.to_line()) == event
    assert RoomEvent.from_line("not json\n") is None
    assert RoomEvent.from_line('{"type": "log", "evil": 1}') is None
