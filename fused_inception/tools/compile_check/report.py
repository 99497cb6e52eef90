"""The verdicts on compiled rows (``compiling.py``'s dicts) and their report: why a row fails, the
failing and spilling lines, the fixed-width table, the per-arch summary.

A variant of either set (generic or launched: ``command.py``) fails if it does not compile,
spills (STACK, LOCAL or ptxas spill bytes nonzero), needs more shared memory than the arch allows
per block, or, for a tensor-core variant (every half-precision and TF32 variant of a kernel whose
dots run on tensor cores, ``aot.KernelSpec.tensor_cores``; the row's ``expects_mma``):

* has no tensor-core instruction;
* runs mma.sync (HMMA) on sm_90 or later, where wgmma (HGMMA) is the full-rate path;
* has no async copy (LDGSTS or UTMALDG): its K loop is not software-pipelined, so every step waits
  for its loads. Checked on the launched specializations only: a generic variant has no
  divisibility hints, so triton cannot prove the 4-byte alignment cp.async needs for a 2-byte
  operand whose row stride may be odd, and falls back to plain loads; every GoogLeNet launch (and
  any launch whose channel counts are multiples of 8) gets the hints.

fp32 IEEE variants are FMA loops by design (triton lowers fp32 IEEE dots to FFMA): no rule about
tensor cores or async copies applies to them, nor to any variant of bn_relu_pool, which has no dot.

A launched specialization is labelled with the GoogLeNet launches that use it
(:func:`launches_label`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from fused_inception.dtypes import short_name
from fused_inception.spec import BLOCK_NAMES

MAX_REGISTERS = 255  # registers one thread can address: more fails the row


def row_failures(row: dict) -> list[str]:
    """Why one row fails (empty when it passes)."""
    if row.get("error"):
        lines = [ln.strip() for ln in row["error"].strip().splitlines() if ln.strip()] or ["error"]
        msg = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
        return [f"compile failed: {msg[:500]}"]
    why = []
    spill = {k: row.get(k) or 0 for k in ("stack", "local", "spill_stores", "spill_loads")}
    if any(spill.values()):
        why.append("spills (" + ", ".join(f"{k} {n} B" for k, n in spill.items() if n) + ")")
    if (row.get("registers") or 0) > MAX_REGISTERS:
        why.append(f"registers {row['registers']} > {MAX_REGISTERS}")
    smem = (row.get("shared") or 0) + (row.get("static_shared") or 0)
    limit = row.get("smem_limit")
    if limit is not None and smem > limit:
        why.append(f"smem {smem} B > sm_{row['arch']} limit {limit} B (static + dynamic shared memory)")
    if row.get("expects_mma"):
        if not ((row.get("hmma") or 0) + (row.get("hgmma") or 0)):
            why.append("no-MMA: no tensor-core instruction (HMMA/HGMMA) in the SASS")
        if row["arch"] >= 90 and (row.get("hmma") or 0):
            why.append(f"mma.sync: {row['hmma']} HMMA on sm_{row['arch']} (wgmma/HGMMA expected)")
        if _row_set(row) == "launched" and not ((row.get("ldgsts") or 0) + (row.get("utmaldg") or 0)):
            why.append("no-async-copy: no LDGSTS/UTMALDG in the SASS (K loop not pipelined)")
    return why


def _row_set(row: dict) -> str:
    return row.get("set") or "generic"


def _row_label(row: dict) -> str:
    precision = f" {row['precision']}" if row.get("precision") is not None else ""
    k = f" k={row['ksize']}" if row.get("ksize") is not None else ""
    spec = ""
    if _row_set(row) == "launched":
        spec = f" launched[{row.get('ints')}] ({launches_label(row.get('launches') or [])})"
    return (f"{row['kernel']}/{row['config']} {row['dtype']}{precision}{k} "
            f"relu={int(bool(row['relu']))} {row['layout']} sm_{row['arch']}{spec}")


def failures(rows: Iterable[dict], allow_spills: bool = False) -> list[str]:
    """One line per failing row: what it is and why (spills left out with ``allow_spills``)."""
    return [f"{_row_label(r)}: {'; '.join(why)}" for r in rows
            for why in [[w for w in row_failures(r) if not (allow_spills and w.startswith("spills"))]] if why]


def spilling(rows: Iterable[dict]) -> list[str]:
    """One line per row that spills: what it is and how many bytes."""
    return [f"{_row_label(r)}: {w}" for r in rows for w in row_failures(r) if w.startswith("spills")]


_COLUMNS = [
    ("kernel", "kernel"), ("config", "config"), ("dtype", "dtype"), ("precision", "prec"),
    ("layout", "layout"), ("relu", "relu"), ("ksize", "k"), ("arch", "arch"), ("registers", "regs"),
    ("stack", "stack"), ("spill", "spill st/ld"), ("local", "local"), ("smem", "smem"),
    ("hmma", "HMMA"), ("hgmma", "HGMMA"), ("ldgsts", "LDGSTS"), ("utmaldg", "UTMALDG"),
    ("barriers", "bar"), ("loop_instructions", "loop"), ("resident_warps", "warps/SM"), ("status", "status"),
]


def _cell(row: dict, key: str) -> str:
    def n(x):
        return "-" if x is None else str(x)

    if key == "dtype":
        return short_name(row["dtype"])
    if key == "relu":
        return "y" if row["relu"] else "n"
    if key == "arch":
        return f"sm_{row['arch']}"
    if key == "spill":
        return "-" if row.get("spill_stores") is None else f"{row['spill_stores']}/{row['spill_loads']}"
    if key == "smem":
        if row.get("shared") is None:
            return "-"
        return str((row.get("shared") or 0) + (row.get("static_shared") or 0))
    if key == "status":
        why = row_failures(row)
        return "ok" if not why else "FAIL " + ",".join(w.split()[0].rstrip(":") for w in why)
    if key == "launches":
        return launches_label(row.get("launches") or [])
    return n(row.get(key))


# the stem's launches name their unit ("conv1") in place of a block, with no branch
_BRANCH_SHORT = {"b1p": "", "b3": "3", "b5": "5", "stem": ""}
_MODEL_SHORT = {"paper": "p", "torchvision": "tv"}


def _blocks_label(entries: set[tuple[str, str]]) -> str:
    """{(block, branch)} -> "3a,3b[3] 4a-4e[3,5]": runs of consecutive blocks with the same
    branches; [3] / [5] name reduce_conv's 3x3 and "5x5" branch launches (none for pointwise)."""
    def pos(block: str) -> int:
        return BLOCK_NAMES.index(block) if block in BLOCK_NAMES else len(BLOCK_NAMES) + 1

    branches: dict[str, list[str]] = {}
    for block, branch in entries:
        short = _BRANCH_SHORT.get(branch, branch)
        if short:
            branches.setdefault(block, []).append(short)
        else:
            branches.setdefault(block, [])
    per = {b: ",".join(sorted(set(br))) for b, br in branches.items()}
    runs: list[list[str]] = []
    for b in sorted(per, key=pos):
        if runs and per[runs[-1][-1]] == per[b] and pos(runs[-1][-1]) == pos(b) - 1 < len(BLOCK_NAMES):
            runs[-1].append(b)
        else:
            runs.append([b])
    parts = []
    for run in runs:
        suffix = f"[{per[run[0]]}]" if per[run[0]] else ""
        names = f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(run)
        parts.append(names + suffix)
    return " ".join(parts)


def launches_label(launches: Sequence[str]) -> str:
    """Compact "which GoogLeNet launches use this specialization": per batch, the blocks (with
    branch, for reduce_conv), shared by both models or per model ("p" paper, "tv" torchvision).
    "paper/3a/N256/b3" names one launch."""
    if not launches:
        return "generic"
    by_batch: dict[int, dict[str, set[tuple[str, str]]]] = {}
    for name in launches:
        model, block, batch, branch = name.split("/")
        by_batch.setdefault(int(batch.lstrip("N")), {}).setdefault(model, set()).add((block, branch))
    parts = []
    for batch in sorted(by_batch, reverse=True):
        models = by_batch[batch]
        sets = list(models.values())
        if len(models) == 2 and sets[0] == sets[1]:
            parts.append(f"N{batch} {_blocks_label(sets[0])}")
        else:
            parts.append(f"N{batch} " + " ".join(f"{_MODEL_SHORT.get(m, m)}:{_blocks_label(e)}"
                                                   for m, e in sorted(models.items())))
    return "; ".join(parts)


def format_table(rows: Sequence[dict]) -> str:
    """A fixed-width table, one line per row (smem = dynamic + static shared bytes; HMMA, HGMMA,
    LDGSTS, UTMALDG: instructions of that kind in the SASS; bar: BAR.* and SYNCS.* instructions;
    warps/SM: resident warps per SM, see resident_warps). Launched
    specializations get two more columns: their int specialization ("1:" ints that are
    constexpr 1, "nd:" ints not divisible by 16; every other int has tt.divisibility 16) and the
    GoogLeNet launches that use them."""
    columns = list(_COLUMNS)
    if any(_row_set(r) == "launched" for r in rows):
        columns += [("ints", "ints (1: constexpr 1, nd: not divisible by 16)"), ("launches", "launched by")]
    header = [h for _, h in columns]
    body = [[_cell(r, k) for k, _ in columns] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    right = {"ksize", "registers", "stack", "spill", "local", "smem", "hmma", "hgmma", "ldgsts", "utmaldg",
             "barriers", "resident_warps"}
    lines = []
    for cells in [header, *body]:
        parts = [c.rjust(w) if k in right else c.ljust(w)
                 for (k, _), c, w in zip(columns, cells, widths)]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(rows: Sequence[dict], allow_spills: bool = False) -> str:
    """Per arch and set (generic, launched): variants, max registers, total spill bytes, tensor
    cores where expected, wgmma/async copies in the tensor-core variants, fewest resident warps."""
    lines = []
    sets = [s for s in ("generic", "launched") if any(_row_set(r) == s for r in rows)]
    for arch in sorted({r["arch"] for r in rows}):
        for which in sets:
            rs = [r for r in rows if r["arch"] == arch and _row_set(r) == which]
            ok = [r for r in rs if not r.get("error")]
            max_regs = max((r.get("registers") or 0 for r in ok), default=0)
            spill = sum((r.get("spill_stores") or 0) + (r.get("spill_loads") or 0) for r in ok)
            want = [r for r in ok if r["expects_mma"]]
            mma = [r for r in want if (r.get("hmma") or 0) + (r.get("hgmma") or 0) > 0]
            wgmma = [r for r in want if (r.get("hgmma") or 0) and not (r.get("hmma") or 0)]
            asyncs = [r for r in want if (r.get("ldgsts") or 0) + (r.get("utmaldg") or 0) > 0]
            warps = [r["resident_warps"] for r in ok if r.get("resident_warps") is not None]
            n_fail = len(failures(rs, allow_spills))
            noun = "variants" if which == "generic" else "specializations"
            lines.append(f"sm_{arch} {which}: {len(rs)} {noun}, {len(rs) - len(ok)} compile errors, max "
                         f"registers {max_regs}, total spill bytes {spill} (stores+loads), MMA present in "
                         f"{len(mma)}/{len(want)} tensor-core {noun} (wgmma only: {len(wgmma)}, async "
                         f"copies: {len(asyncs)}), fewest resident warps/SM {min(warps, default=0)}, "
                         f"{n_fail} failing")
    return "\n".join(lines)
