"""The clean room: a separate process that alone ever holds plaintext, and its operator side.

Public entry points: ``run_room`` (start a run, get its receipt), ``RunReceipt`` (verify a
run offline), ``open_outputs`` (the consumer's side) and the story engine in ``story``.
"""

from sealroom.room.launcher import run_room
from sealroom.room.outputs import open_outputs
from sealroom.room.receipt import RunReceipt, load_receipt

run = run_room  # the documented entry point: sealroom.room.run(ws, contract_id, pipeline)

__all__ = ["RunReceipt", "load_receipt", "open_outputs", "run", "run_room"]
