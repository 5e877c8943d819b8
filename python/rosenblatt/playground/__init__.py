"""The Playground: a local, browser-based neural-network playground on the library's core.

``python -m rosenblatt playground`` serves it on 127.0.0.1; ``--experiments`` runs the
lecture's exercise 11-2 headless and writes a report. See :func:`main`.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m rosenblatt playground``; returns the exit status."""
    from .cli import main as _main

    return _main(argv)
