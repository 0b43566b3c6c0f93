"""Raise the app's NotFound (a 404 one-liner) from a page module.

``sealroom.ui.app`` imports every page's router, so a page module cannot import the app at
its top; the error class is looked up when a request needs it.
"""

from __future__ import annotations


def not_found(message: str) -> Exception:
    from sealroom.ui.app import NotFound

    return NotFound(message)
