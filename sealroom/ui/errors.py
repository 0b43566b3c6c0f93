"""The dashboard's one error of its own, apart from the app so that views can raise it."""

from __future__ import annotations

from sealroom.errors import SealroomError


class NotFound(SealroomError):
    """A page for something the workspace does not hold (a run id, a contract, a job):
    a 404 with one line, as a page or as ``{"error": ...}`` under ``/api/``."""
