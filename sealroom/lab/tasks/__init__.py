"""Tasks: Python functions registered by name (built-ins here; further packages through the
``sealroom.lab.tasks`` entry-point group). No code travels over the API."""
