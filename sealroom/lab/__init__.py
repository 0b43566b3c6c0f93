"""The experiment testbed (``sealroom lab``): experiments whose jobs train, attack and
evaluate models, queued to Ray workers, tracked in MLflow.

Trust boundary: lab jobs run OUTSIDE the rooms, on data the experimenter holds, and every
record says so (``trust: outside-room``). Only the ``room_run`` task (a contract-bound
``sealroom run``) and the ``attack_served`` task (queries through the inference API, under
its budget) touch sealed data or sealed models, and then only through those doors.
"""
