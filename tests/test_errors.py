"""The message helpers every refusal uses: near names and plural-aware counts."""

from __future__ import annotations

from sealroom.errors import ConfigError, ConfigProblems, did_you_mean, plural


def test_did_you_mean_offers_the_closest_names_only() -> None:
    assert did_you_mean("epoch", ["epochs", "batch_size", "seed"]) == " (did you mean 'epochs'?)"
    assert did_you_mean("adamm", ["adam", "radam", "sgd"]) == " (did you mean 'adam' or 'radam'?)"
    assert did_you_mean("zzz", ["adam", "sgd"]) == ""
    assert did_you_mean(3, ["adam"]) == ""


def test_plural() -> None:
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert plural(1, "entry") == "1 entry" and plural(2, "entry") == "2 entries"
    assert plural(2, "key") == "2 keys" and plural(3, "analysis", "analyses") == "3 analyses"


def test_config_problems_keep_one_line_each() -> None:
    problems = ConfigProblems(["b.yaml: x: bad", "a.yaml: y:\n  worse"])
    assert isinstance(problems, ConfigError)
    assert problems.problems == ("b.yaml: x: bad", "a.yaml: y: worse")
    assert str(problems) == "b.yaml: x: bad; a.yaml: y: worse"
