# ruff: noqa: E501  (the steps read best as one table row each)
"""The two sequence diagrams of the docs, drawn with matplotlib: who sends what to whom.

    python docs/diagrams/sequences.py [--out docs/figures] [--svg-only]

writes ``sequence-training.svg`` / ``.png`` (the training story: provider, consumer,
operator, room, key service, ledger) and ``sequence-inference.svg`` / ``.png`` (the sealed
inference protocol). Each message is coloured by what travels (a sealed file, a key, a
signed public document, a receipt); the right-hand column says what the operator sees of
it. Deterministic (fixed SVG ids, no date, text kept as text) and offline. The steps follow
sealroom/room/story.py, room/session.py and docs/key-release.md (training), and
docs/inference-protocol.md and sealroom/serve/ (inference); tests/docs checks that every
participant and label below is in the pictures.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch, Patch

OUT = Path(__file__).resolve().parents[1] / "figures"

# What travels, and its colour.
KINDS = {
    "sealed": ("#3b6fb6", "sealed file (ciphertext)"),
    "key": ("#d0641e", "key (wrapped or HPKE-sealed)"),
    "signed": ("#3f8f4f", "signed public document"),
    "receipt": ("#7a5aa6", "ledger entry or receipt"),
    "call": ("#555555", "request or check"),
}
SEES_COLOUR = "#8a1c1c"


@dataclass(frozen=True)
class Step:
    """One message (``src`` → ``dst``) or, when they are equal, one action of a participant."""

    src: str
    dst: str
    label: str
    kind: str = "call"
    sees: str = ""  # what the operator sees of it ("" where it is nowhere near the operator)


@dataclass(frozen=True)
class Diagram:
    name: str
    title: str
    participants: tuple[str, ...]
    steps: tuple[Step, ...]
    note: str


TRAINING = Diagram(
    name="sequence-training",
    title="Training: who sends which file to whom, where keys travel, what the operator sees",
    participants=("Provider", "Consumer", "Operator", "Room", "Key service", "Ledger"),
    steps=(
        Step(
            "Provider",
            "Provider",
            "seal raw data: fresh data key, chunks encrypted, manifest signed",
        ),
        Step("Provider", "Operator", "sealed package (dataset.sealed)", "sealed", "ciphertext"),
        Step(
            "Provider",
            "Operator",
            "signed data card and dataset declaration",
            "signed",
            "public card",
        ),
        Step("Consumer", "Operator", "sealed base model (model.sealed)", "sealed", "ciphertext"),
        Step(
            "Consumer",
            "Provider",
            "contract proposal, signed by the consumer",
            "signed",
            "contract (public)",
        ),
        Step("Provider", "Consumer", "provider's signature on the contract", "signed", "signature"),
        Step(
            "Consumer",
            "Ledger",
            "contract with every signature: register",
            "signed",
            "contract (public)",
        ),
        Step("Ledger", "Consumer", "contract.registered receipt", "receipt", "public entry"),
        Step(
            "Consumer",
            "Operator",
            "pipeline.json + consumer's signature (.sig)",
            "signed",
            "pipeline (public)",
        ),
        Step(
            "Provider",
            "Key service",
            "data key, imported under a release policy",
            "key",
            "wrapped key (*)",
        ),
        Step(
            "Consumer",
            "Key service",
            "model key, imported under a release policy",
            "key",
            "wrapped key (*)",
        ),
        Step(
            "Operator",
            "Room",
            "run request: signed contract, pipeline, package paths",
            "call",
            "its own request",
        ),
        Step(
            "Room", "Room", "verify signatures and receipt; check pipeline against contract (Rego)"
        ),
        Step("Room", "Ledger", "run.started", "receipt", "public entry"),
        Step("Room", "Key service", "budget reserve (epsilon, delta)", "call", "budget.reserved"),
        Step(
            "Room",
            "Key service",
            "attestation evidence: nonce, ephemeral key, run key",
            "call",
            "evidence (public)",
        ),
        Step(
            "Key service",
            "Room",
            "data and model keys, HPKE-sealed to the room's key",
            "key",
            "ciphertext",
        ),
        Step("Key service", "Ledger", "key.released", "receipt", "public entry"),
        Step("Room", "Room", "decrypt in memory, train and evaluate (DP-SGD)"),
        Step(
            "Room",
            "Operator",
            "outputs + outputs.key, sealed to the consumer (runs/<id>/)",
            "sealed",
            "ciphertext",
        ),
        Step("Room", "Key service", "budget settle (epsilon spent)", "call", "budget.settled"),
        Step("Room", "Ledger", "run.completed, signed by the run key", "receipt", "public entry"),
        Step(
            "Ledger", "Operator", "receipt.json, countersigned by the ledger", "receipt", "receipt"
        ),
        Step("Operator", "Consumer", "sealed outputs + receipt", "sealed", "ciphertext"),
        Step("Consumer", "Consumer", "verify receipt; decrypt outputs with the private key"),
    ),
    note=(
        "The room's calls to the key service and the ledger cross the operator's channel: it "
        "relays sealed keys and public entries, never a data key or plaintext.\n(*) With the "
        "embedded key service the operator's workspace holds the root key that wraps the "
        "data keys; a provider's own key service (kms serve) keeps it from the operator."
    ),
)

INFERENCE = Diagram(
    name="sequence-inference",
    title="Sealed inference: attested room, HPKE-sealed requests, signed receipts in Merkle batches",
    participants=("Client", "Operator", "Serving room", "Key service", "Ledger"),
    steps=(
        Step(
            "Operator",
            "Serving room",
            "start: contract, sealed model, listening socket",
            "call",
            "its own request",
        ),
        Step(
            "Serving room",
            "Key service",
            "attestation evidence + room's HPKE key",
            "call",
            "evidence (public)",
        ),
        Step(
            "Key service", "Serving room", "model key, HPKE-sealed to the room", "key", "ciphertext"
        ),
        Step(
            "Serving room",
            "Ledger",
            "inference.started: startup attestation",
            "receipt",
            "public entry",
        ),
        Step("Client", "Serving room", "GET /v1/attestation?nonce=N", "call", "nonce (public)"),
        Step(
            "Serving room",
            "Client",
            "evidence binding nonce, HPKE key, receipt key, model and contract",
            "signed",
            "attestation (public)",
        ),
        Step("Client", "Client", "verify evidence; pin model and contract digests"),
        Step(
            "Client", "Serving room", "POST /v1/infer: HPKE-sealed request", "sealed", "ciphertext"
        ),
        Step(
            "Serving room",
            "Serving room",
            "open; check freshness, replay, client, shape; budget check",
        ),
        Step(
            "Serving room",
            "Ledger",
            "inference.charged: lease committed before serving",
            "receipt",
            "public entry",
        ),
        Step("Serving room", "Serving room", "run the model in memory"),
        Step(
            "Serving room",
            "Client",
            "sealed answer + signed receipt (Merkle proof)",
            "sealed",
            "ciphertext",
        ),
        Step(
            "Serving room",
            "Ledger",
            "inference.receipts: batched Merkle roots",
            "receipt",
            "public roots",
        ),
        Step(
            "Client",
            "Client",
            "verify: proof to root, batch signed by the attested key, root in ledger",
        ),
    ),
    note=(
        "The operator runs the server and relays every byte, but requests and answers are "
        "sealed to keys born in the attested room: it sees ciphertext, sizes and public entries."
    ),
)

DIAGRAMS = (TRAINING, INFERENCE)
ROW = 0.42  # inches per step
COLUMN = 2.3  # inches per participant


def draw(diagram: Diagram, out: Path, png: bool = True) -> list[Path]:
    """Draw ``diagram`` as SVG (and PNG) under ``out``; the paths written."""
    parts = diagram.participants
    x = {name: i for i, name in enumerate(parts)}
    rows = len(diagram.steps)
    sees_x = len(parts) - 0.35
    width = COLUMN * (len(parts) + 1.1)
    height = ROW * (rows + 5.5)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(-0.75, len(parts) + 0.85)
    ax.set_ylim(rows + 3.2, -2.4)
    ax.axis("off")
    ax.text(-0.7, -2.0, diagram.title, fontsize=12, fontweight="bold", va="center")
    operator = x.get("Operator")
    if operator is not None:
        band = (operator - 0.42, -1.3)
        ax.add_patch(plt.Rectangle(band, 0.84, rows + 2.6, color="#f4e3e3", zorder=0))
    for name, i in x.items():
        for y in (-0.9, rows + 0.9):
            box = FancyBboxPatch(
                (i - 0.4, y - 0.32),
                0.8,
                0.64,
                boxstyle="round,pad=0.02",
                facecolor="#eef1f6",
                edgecolor="#34495e",
                zorder=3,
            )
            ax.add_patch(box)
        ax.text(i, -0.9, name, ha="center", va="center", fontsize=10, fontweight="bold", zorder=4)
        ax.text(i, rows + 0.9, name, ha="center", va="center", fontsize=10, zorder=4)
        ax.plot(
            [i, i], [-0.55, rows + 0.55], color="#9aa5b1", linestyle="--", linewidth=0.8, zorder=1
        )
    ax.text(
        sees_x,
        -0.9,
        "the operator sees",
        ha="left",
        va="center",
        fontsize=10,
        fontweight="bold",
        color=SEES_COLOUR,
    )
    for row, step in enumerate(diagram.steps):
        y = row + 0.2
        ax.text(-0.7, y, f"{row + 1}", ha="left", va="center", fontsize=8, color="#666666")
        if step.src == step.dst:
            i = x[step.src]
            ax.add_patch(
                FancyBboxPatch(
                    (i - 0.08, y - 0.17),
                    0.16,
                    0.34,
                    boxstyle="round,pad=0.01",
                    facecolor="#d9dee6",
                    edgecolor="#34495e",
                    linewidth=0.6,
                    zorder=3,
                )
            )
            left = i + 0.12 if i < len(parts) - 1 else i - 0.12
            ax.text(
                left,
                y,
                step.label,
                ha="left" if left > i else "right",
                va="center",
                fontsize=8,
                style="italic",
                color="#222222",
                zorder=4,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
            )
        else:
            colour = KINDS[step.kind][0]
            a, b = x[step.src], x[step.dst]
            ax.annotate(
                "",
                xy=(b, y),
                xytext=(a, y),
                zorder=2,
                arrowprops={
                    "arrowstyle": "-|>",
                    "color": colour,
                    "linewidth": 1.4,
                    "shrinkA": 2,
                    "shrinkB": 2,
                },
            )
            ax.text(
                (a + b) / 2,
                y - 0.08,
                step.label,
                ha="center",
                va="bottom",
                fontsize=8,
                color=colour,
                zorder=4,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.85},
            )
        if step.sees:
            ax.text(sees_x, y, step.sees, ha="left", va="center", fontsize=8, color=SEES_COLOUR)
    ax.text(-0.7, rows + 1.5, diagram.note, ha="left", va="top", fontsize=8.5, color="#333333")
    handles = [Patch(color=colour, label=label) for colour, label in KINDS.values()]
    handles.append(Patch(color="#f4e3e3", label="the operator's lifeline"))
    ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(handles),
        fontsize=8,
        frameon=False,
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{diagram.name}.svg"]
    fig.savefig(paths[0], format="svg", metadata={"Date": None}, bbox_inches="tight")
    if png:
        paths.append(out / f"{diagram.name}.png")
        fig.savefig(
            paths[1], format="png", dpi=90, metadata={"Software": None}, bbox_inches="tight"
        )
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the figures")
    parser.add_argument("--svg-only", action="store_true", help="skip the PNG copies")
    opts = parser.parse_args(argv)
    plt.rcParams.update(
        {"svg.hashsalt": "sealroom", "svg.fonttype": "none", "font.family": "DejaVu Sans"}
    )
    written = [path for diagram in DIAGRAMS for path in draw(diagram, opts.out, not opts.svg_only)]
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
