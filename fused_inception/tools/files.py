"""Writing the commands' output files (JSON reports, markdown, tuned-config files) whole."""

from __future__ import annotations

import json
from pathlib import Path


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a process killed while
    writing leaves the previous file whole, never a truncated one. Creates the parent folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(p)


def write_json(report: dict, path: str | Path) -> None:
    """``report`` as indented JSON, written whole (see :func:`write_text`)."""
    write_text(path, json.dumps(report, indent=1))
