"""The `sealroom` command (typer + rich). Each group lives in its own module."""
