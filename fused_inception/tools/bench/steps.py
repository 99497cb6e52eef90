"""The step-status table of ``benchmarks/gpu_check.sh``'s report: which steps ran, which were cut at
their time limit, failed, or never started, and what each left behind.

The script appends one tab-separated line per step to a steps file as the step ends (``read_steps``
parses it); ``bench --merge ... --steps FILE`` puts the table into the merged JSON (``steps``) and
the markdown (``format_steps``). Columns of a line: step name, what it does, status, seconds it
took, its limit in seconds, exit code, the output file it wrote (a name in the steps file's
directory, or ``-``), a note. Status is one of ``STATUSES``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from fused_inception.tools.tables import md_table

# ran: exited by itself (rc 0, or a nonzero rc that is a result, e.g. a failed parity row);
# cut: stopped by its time limit (timeout's rc 124, or 137 after the kill grace);
# failed: exited with an error; skipped: not started (too little time left, or not wanted)
STATUSES = ("ran", "cut", "failed", "skipped")
COLUMNS = ("step", "what", "status", "seconds", "limit_s", "rc", "output", "note")


def read_steps(path: str | Path) -> list[dict]:
    """The steps file's lines as dicts (keys ``COLUMNS``; seconds, limit_s and rc as ints or None),
    each with ``outcome``: a summary of what its output file holds (``summarize_output``).
    ValueError for a malformed line."""
    path = Path(path)
    steps = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(COLUMNS):
            raise ValueError(f"{path}:{n}: expected {len(COLUMNS)} tab-separated fields "
                             f"({', '.join(COLUMNS)}), got {len(cells)}")
        step = dict(zip(COLUMNS, cells))
        if step["status"] not in STATUSES:
            raise ValueError(f"{path}:{n}: status must be one of {', '.join(STATUSES)}, got {step['status']!r}")
        for key in ("seconds", "limit_s", "rc"):
            step[key] = None if step[key] in ("", "-") else int(step[key])
        out = None if step["output"] in ("", "-") else path.parent / step["output"]
        step["outcome"] = summarize_output(out) if out is not None else ""
        steps.append(step)
    return steps


_PYTEST_RESULT = re.compile(r" (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


def summarize_output(path: Path) -> str:
    """What a step's output file holds, in a few words: a bench JSON's timed / skipped / failed
    measurements, a parity JSON's passed / failed rows, a tuned file's tuned and failed rows (configs,
    then tactics), or a pytest -v log's per-test results (counted line by line, so a run cut short
    still counts)."""
    if not path.exists():
        return "no output written"
    text = path.read_text(errors="replace")
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except ValueError:
            return "output is not valid JSON"
        schema = str(doc.get("schema", ""))
        if schema.startswith("fused_inception.bench"):
            results = [r for c in doc.get("cases", []) for r in c["results"].values()]
            timed = sum("median_ms" in r for r in results)
            skipped = sum("skipped" in r for r in results)
            errors = sum("error" in r or r.get("check") == "MISMATCH" for r in results)
            return f"{timed} timed, {skipped} skipped, {errors} failed (of {len(results)} measurements)"
        if schema.startswith("fused_inception.parity"):
            rows = doc.get("rows", [])
            failed = sum(r.get("passed") is False for r in rows)
            skipped = sum(bool(r.get("skipped")) for r in rows)
            total = doc.get("planned_rows", len(rows))
            return (f"{len(rows)} of {total} rows: {len(rows) - failed - skipped} passed, {failed} failed, "
                    f"{skipped} skipped")
        if "choices" in doc:
            tuned = doc.get("tuned", {})
            text = (f"{len(doc['choices'])} rows tuned, {len(tuned.get('failed', []))} failed, "
                    f"{len(tuned.get('incomplete', []))} not reached")
            if "tactics" in tuned:  # the tactic rows (tools/tune/tactic_rows.py)
                t = tuned["tactics"]
                text += (f"; tactics: {len(doc.get('tactics', []))} recorded, {len(t.get('failed', []))} failed, "
                         f"{len(t.get('incomplete', []))} not reached")
            return text
        return "JSON"
    counts: dict[str, int] = {}
    for m in _PYTEST_RESULT.finditer(text):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    if counts:
        return "tests: " + ", ".join(f"{n} {k.lower()}" for k, n in counts.items())
    return f"{len(text.splitlines())} lines of output"


def status_text(step: dict) -> str:
    """'ran', 'cut at N s', 'failed with rc N' or 'skipped' (with the rc of a run that is a result)."""
    status = step["status"]
    if status == "cut":
        return f"cut at {step['seconds']} s"
    if status == "failed":
        return f"failed with rc {step['rc']}"
    if status == "ran" and step["rc"]:
        return f"ran (rc {step['rc']})"
    return status


def format_steps(steps: list[dict]) -> str:
    """The steps as a markdown table: status, time and limit, what each left behind, the note."""
    header = ["step", "what", "status", "time s", "limit s", "outcome", "note"]
    rows = [[s["step"], s["what"], status_text(s), "-" if s["seconds"] is None else s["seconds"],
             "-" if s["limit_s"] is None else s["limit_s"], s["outcome"] or "-", s["note"] or "-"] for s in steps]
    return md_table(header, rows)
