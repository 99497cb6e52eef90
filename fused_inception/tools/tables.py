"""Plain-text and markdown tables, and comma-separated option values, for the commands' output."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """Aligned columns under a dashed rule; the first ``left`` columns left-aligned, the rest right."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]

    def line(r: Sequence[object]) -> str:
        return "  ".join(f"{str(x):<{w}}" if i < left else f"{str(x):>{w}}"
                         for i, (x, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([line(header), "-" * len(line(header)), *(line(r) for r in rows)])


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def csv_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] (for comma-separated command-line values)."""
    return [t.strip() for t in str(text).split(",") if t.strip()]
