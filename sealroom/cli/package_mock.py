"""`sealroom package mock`: write a package's mock data (drawn from its signed card) to a folder.

Registered on the ``package`` group by :mod:`sealroom.cli.package`; kept apart so the card
commands and the mock command can change without touching each other.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sealroom.cli.console import JSON_OPTION, console, emit_json, refusals


def mock_command(
    package: Path = typer.Argument(..., help="A sealed package folder (X.sealed) or a card.json."),
    out: Path = typer.Option(..., "--out", help="A new or empty folder for the mock files."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Write mock data drawn from a package's signed card (its file names and formats).

    Values are random within the card's declared ranges, labels uniform over its class
    names; nothing of the real data is read.

    Example: sealroom package mock mnist.sealed --out mnist-mock
    """
    from sealroom.cli.train_mock import say_card
    from sealroom.data.mock import mock_records, write_mock
    from sealroom.data.mock_card import BANNER, open_card

    with refusals():
        opened = open_card(package)
        written = write_mock(opened.card, out)
    card = opened.card
    records = {s.name: mock_records(card, s) for s in card.sources}
    if json_out:
        emit_json(
            {
                "dataset": card.dataset,
                "card": str(opened.path),
                "trust": opened.trust,
                "note": opened.note,
                "out": str(out),
                "files": written,
                "records": records,
                "mock": True,
            }
        )
        return
    say_card(opened, card.dataset)
    counts = ", ".join(f"{name} {n:,}" for name, n in records.items())
    count = len(written)
    console.print(
        f"{BANNER} for dataset {card.dataset} ({counts} records) -> {out}: "
        f"{count} {'file' if count == 1 else 'files'}",
        highlight=False,
        soft_wrap=True,
    )
    for name in written[:8]:
        console.print(f"  {name}", highlight=False, soft_wrap=True, markup=False)
    if count > 8:
        console.print(f"  … ({count} files)", highlight=False)
