"""The report's plots: one panel per metric with integer epoch ticks, class-name labels on the
confusion matrix, per-class bars; and the run draws them from the released values."""

from __future__ import annotations

from matplotlib.ticker import MaxNLocator

from sealroom.train.epochs import EpochRecord
from sealroom.train.plots import (
    confusion_matrix_figure,
    per_class_figure,
    training_curves_figure,
    training_curves_png,
)

HISTORY = [
    EpochRecord(
        e,
        {"loss": 1.0 / e, "accuracy": 0.5 + e / 20},
        {"loss": 1.2 / e, "accuracy": 0.4 + e / 20},
        0.1,
        10 * e,
    )
    for e in range(1, 4)
]


def test_one_panel_per_metric_with_integer_epoch_ticks() -> None:
    figure = training_curves_figure(HISTORY, best_epoch=2)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    for ax in axes:
        assert isinstance(ax.xaxis.get_major_locator(), MaxNLocator)
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks)
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels[:2] == ["train", "validation"] and "best epoch" in labels
    assert training_curves_png(HISTORY).startswith(b"\x89PNG")


def test_a_metric_with_validation_values_only_gets_a_validation_curve() -> None:
    history = [EpochRecord(e, {}, {"accuracy": 0.5}, 0.1, e) for e in (1, 2)]  # DP: val only
    [ax] = training_curves_figure(history).axes
    assert [line.get_label() for line in ax.get_lines()] == ["validation"]


def test_confusion_matrix_axes_carry_the_class_names() -> None:
    names = ["cat", "dog", "bird"]
    figure = confusion_matrix_figure([[5, 1, 0], [0, 4, 1], [1, 0, 3]], names)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted class", "True class")


def test_per_class_bars_per_class_name() -> None:
    report = {
        "cat": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10},
        "dog": {"precision": 0.5, "recall": 0.6, "f1": 0.55, "support": 12},
    }
    ax = per_class_figure(report).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    assert [c.get_label() for c in ax.containers] == ["precision", "recall", "f1"]
    heights = [[bar.get_height() for bar in c] for c in ax.containers]
    assert heights == [[0.9, 0.5], [0.8, 0.6], [0.85, 0.55]]
