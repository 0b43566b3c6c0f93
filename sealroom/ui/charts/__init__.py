"""Charts drawn on the server as inline SVG: no chart library, no script, works offline.

Each function returns :class:`markupsafe.Markup`; every label passes through
:func:`markupsafe.escape`, so a name from a contract or a job cannot inject markup.
"""
