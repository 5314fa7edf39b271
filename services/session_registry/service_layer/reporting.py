"""How a long operation reports its progress: a plain callback the CLI may draw as a bar."""

from __future__ import annotations

from collections.abc import Callable

Report = Callable[[int, int], None]
"""`report(done, total)`: records handled so far, and in all (0 when unknown)."""
