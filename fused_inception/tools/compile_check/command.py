"""Ahead-of-time compile check of every kernel variant the library can launch (no GPU needed).

For each :class:`~fused_inception.tools.compile_check.aot.LaunchVariant` and target arch it runs
``triton.compile`` for ``GPUTarget("cuda", arch, 32)`` and inspects the cubin with the tools that
ship in the triton wheel (``triton/backends/nvidia/bin``):

* ``cuobjdump --dump-resource-usage``: REG, STACK, SHARED (static), LOCAL;
* ``cuobjdump -sass``: tensor-core instructions (HMMA = mma.sync, HGMMA = wgmma), async copies
  (LDGSTS = cp.async, UTMALDG = TMA load) and barriers (BAR.*: CTA barriers; SYNCS.*: mbarrier
  operations of async copies and wgmma), counted statically in the code;
* ``ptxas -v`` on the kernel's PTX, with triton's own flags: spill stores / loads;
* ``compiled.metadata.shared``: the dynamic shared memory triton launches with.

Two sets of variants (``fused_inception.tools.compile_check.aot``): the **generic** ones (ints without
divisibility hints, only the memory format's unit strides specialized: any shape) and the
**launched** specializations, recorded from the library's own forward of GoogLeNet's nine blocks
(paper and torchvision, NCHW and channels_last, batches 1 and 256 by default) and specialized as
triton's JIT does (ints equal to 1 become constexprs, ints divisible by 16 get
``tt.divisibility = 16``), deduplicated. The JIT compiles the latter on a GPU, so they are the
binaries GoogLeNet runs; the generic ones bound every other shape.

From registers and shared memory it derives the **resident warps per SM** (:func:`resident_warps`,
the figures in :data:`SM_LIMITS`): what bounds latency hiding when every program runs one serial
chain of loads and MMAs.

A variant of either set fails if it does not compile, spills (STACK, LOCAL or ptxas spill bytes
nonzero), needs more shared memory than the arch allows per block, or, for a tensor-core variant
(every half-precision and TF32 variant):

* has no tensor-core instruction;
* runs mma.sync (HMMA) on sm_90 or later, where wgmma (HGMMA) is the full-rate path;
* has no async copy (LDGSTS or UTMALDG): its K loop is not software-pipelined, so every step waits
  for its loads. Checked on the launched specializations only: a generic variant has no
  divisibility hints, so triton cannot prove the 4-byte alignment cp.async needs for a 2-byte
  operand whose row stride may be odd, and falls back to plain loads; every GoogLeNet launch (and
  any launch whose channel counts are multiples of 8) gets the hints.

fp32 IEEE variants are FMA loops by design (triton lowers fp32 IEEE dots to FFMA): no rule about
tensor cores or async copies applies to them.

Triton compiles ahead of time only when the kernels are ``JITFunction`` s, i.e. when
``TRITON_INTERPRET`` was not "1" when they were decorated (the CPU test suite sets it). In that
case, and to use more than one core (triton.compile holds the GIL), the work runs in
``python -m fused_inception compile-check --worker`` subprocesses with ``TRITON_INTERPRET`` removed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from fused_inception.tools.compile_check.aot import (
    GOOGLENET_BATCHES,
    KERNELS,
    LaunchVariant,
    compile_spec,
    googlenet_launch_variants,
    launch_variants,
)
from fused_inception.dtypes import short_name
from fused_inception.spec import BLOCK_NAMES
from fused_inception.tools.cli import command_line
from fused_inception.tools.tables import csv_list

DESCRIPTION = ("compile every launchable kernel variant (generic, and the specializations GoogLeNet's "
               "blocks launch) ahead of time for the given archs (no GPU needed) and report registers, "
               "spills, shared memory, tensor-core instructions (HMMA/HGMMA), async copies (LDGSTS/UTMALDG), "
               "barriers and resident warps per SM")

# opt-in maximum shared memory per block (static + dynamic), bytes
SMEM_LIMIT: dict[int, int] = {
    80: 166912,  # 163 KiB
    86: 101376,
    87: 166912,
    89: 101376,
    90: 232448,  # 227 KiB
    100: 232448,
    120: 101376,
}
MAX_REGISTERS = 255


@dataclass(frozen=True)
class SmLimits:
    """Per-SM resources that bound how many programs (CTAs) are resident at once (CUDA
    programming guide, "Compute capabilities" table, for compute capabilities 8.0 and 9.0)."""

    registers: int = 65536  # 32-bit registers per SM
    reg_alloc_unit: int = 256  # registers are allocated per warp in units of 256
    shared: int = 167936  # shared memory per SM usable by CTAs, bytes
    shared_reserved: int = 1024  # shared memory the system reserves per CTA, bytes
    max_warps: int = 64
    max_ctas: int = 32


SM_LIMITS: dict[int, SmLimits] = {
    80: SmLimits(shared=167936),  # A100: 164 KiB of the 192 KiB L1/shared per SM
    90: SmLimits(shared=233472),  # H100/H200: 228 KiB of the 256 KiB L1/shared per SM
}


def resident_warps(arch: int, registers: int, shared: int, num_warps: int) -> int | None:
    """Warps of one kernel resident per SM: programs per SM limited by registers (per-warp
    allocation in 256-register units), shared memory (plus the per-CTA reservation), the warp and
    CTA limits, times ``num_warps``. None for an arch without figures in SM_LIMITS."""
    lim = SM_LIMITS.get(arch)
    if lim is None:
        return None
    per_warp = -(-max(registers, 1) * 32 // lim.reg_alloc_unit) * lim.reg_alloc_unit
    by_regs = lim.registers // (per_warp * num_warps)
    by_smem = lim.shared // (shared + lim.shared_reserved)
    ctas = min(by_regs, by_smem, lim.max_ctas, lim.max_warps // num_warps)
    return ctas * num_warps


_RESOURCE_RE = re.compile(r"\b(REG|STACK|SHARED|LOCAL):(\d+)")
_SPILL_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_REGS_RE = re.compile(r"Used (\d+) registers")


# ---------------------------------------------------------------- tools

def _nvidia_bin() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("triton")
    if spec is None or spec.origin is None:
        raise RuntimeError("triton is not installed")
    return Path(spec.origin).parent / "backends" / "nvidia" / "bin"


def _tool(name: str) -> str:
    path = _nvidia_bin() / name
    if not path.exists():
        raise RuntimeError(f"{path} not found (it ships in the triton wheel)")
    return str(path)


def _ptxas(arch: int) -> str:
    try:  # the ptxas triton itself uses for this arch (honours TRITON_PTXAS_PATH)
        from triton.backends.nvidia.compiler import get_ptxas

        return get_ptxas(arch).path
    except Exception:
        return _tool("ptxas-blackwell" if arch >= 100 and (_nvidia_bin() / "ptxas-blackwell").exists()
                     else "ptxas")


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    return res.stdout + res.stderr


def parse_args_arch(text: str) -> list[int]:
    """"80,90" / "sm_80,sm_90a" -> [80, 90]."""
    archs = []
    for part in str(text).split(","):
        part = part.strip().lower().removeprefix("sm_").removeprefix("sm").rstrip("a")
        if part:
            archs.append(int(part))
    if not archs:
        raise ValueError(f"no arch in {text!r}")
    return archs


# ---------------------------------------------------------------- one variant

def _empty_row(v: LaunchVariant, arch: int) -> dict:
    return {
        "kernel": v.kernel, "config": v.config_name, "dtype": v.dtype,
        "precision": v.input_precision, "ksize": v.ksize, "relu": v.relu, "layout": v.layout,
        "arch": arch, "num_warps": v.config.num_warps, "num_stages": v.config.num_stages,
        "registers": None, "stack": None, "spill_stores": None, "spill_loads": None,
        "local": None, "shared": None, "static_shared": None, "smem_limit": SMEM_LIMIT.get(arch),
        "hmma": None, "hgmma": None, "ldgsts": None, "utmaldg": None, "barriers": None,
        "resident_warps": None, "expects_mma": v.expects_mma,
        "compile_s": None, "error": None,
        "set": "launched" if v.launched else "generic", "ints": v.ints_label(),
        "launches": list(v.launches), "variant": v.to_dict(),
    }


def _compile_with_ptxas_log(compile_fn):
    """Run a triton.compile and capture the ``ptxas -v`` log triton prints with
    ``knobs.nvidia.dump_ptxas_log`` (empty when the kernel came from triton's cache)."""
    import contextlib
    import io

    from triton import knobs

    buf = io.StringIO()
    old = knobs.nvidia.dump_ptxas_log
    knobs.nvidia.dump_ptxas_log = True
    try:
        with contextlib.redirect_stdout(buf):
            compiled = compile_fn()
    finally:
        knobs.nvidia.dump_ptxas_log = old
    return compiled, buf.getvalue()


def check_variant(v: LaunchVariant, arch: int) -> dict:
    """Compile one variant for one arch in this process and inspect it; never raises."""
    row = _empty_row(v, arch)
    t0 = time.perf_counter()
    try:
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        cs = compile_spec(v)
        src = ASTSource(cs.fn, cs.signature, cs.constexprs, cs.attrs)
        compiled, triton_log = _compile_with_ptxas_log(
            lambda: triton.compile(src, target=GPUTarget("cuda", arch, 32), options=dict(cs.options)))
        row["compile_s"] = round(time.perf_counter() - t0, 2)
        row["shared"] = int(compiled.metadata.shared)
        with tempfile.TemporaryDirectory(prefix="fi_aot_") as tmp:
            cubin = Path(tmp) / "kernel.cubin"
            cubin.write_bytes(compiled.asm["cubin"])
            usage = dict((k, int(n)) for k, n in _RESOURCE_RE.findall(
                _run([_tool("cuobjdump"), "--dump-resource-usage", str(cubin)])))
            row["registers"] = usage.get("REG")
            row["stack"] = usage.get("STACK")
            row["static_shared"] = usage.get("SHARED")
            row["local"] = usage.get("LOCAL")
            sass = _run([_tool("cuobjdump"), "-sass", str(cubin)])
            row["hmma"] = len(re.findall(r"\bHMMA\.", sass))
            row["hgmma"] = len(re.findall(r"\bHGMMA\.", sass))
            row["ldgsts"] = len(re.findall(r"\bLDGSTS\b", sass))
            row["utmaldg"] = len(re.findall(r"\bUTMALDG\b", sass))
            row["barriers"] = len(re.findall(r"\b(?:BAR|SYNCS)\.", sass))
            # spill bytes: triton's own ptxas -v log when it compiled now; on a triton cache hit
            # (no ptxas run), ptxas -v on the same PTX with triton's flags
            log = triton_log
            if not _SPILL_RE.search(log):
                ptx = compiled.asm["ptx"]
                target = re.search(r"^\s*\.target\s+(sm_\w+)", ptx, re.M)
                gpu = target.group(1) if target else f"sm_{arch}"
                ptx_file = Path(tmp) / "kernel.ptx"
                ptx_file.write_text(ptx)
                fmad = [] if getattr(compiled.metadata, "enable_fp_fusion", True) else ["--fmad=false"]
                log = _run([_ptxas(arch), "-lineinfo", *fmad, "-v", "--regAllocOptLevel=2",
                            f"--gpu-name={gpu}", str(ptx_file), "-o", str(Path(tmp) / "ptxas.o")])
            spill = _SPILL_RE.search(log)
            if spill:
                row["spill_stores"], row["spill_loads"] = int(spill.group(2)), int(spill.group(3))
                row["stack"] = max(row["stack"] or 0, int(spill.group(1)))
            regs = _PTXAS_REGS_RE.search(log)
            if row["registers"] is None and regs:
                row["registers"] = int(regs.group(1))
        if row["registers"] is not None:
            row["resident_warps"] = resident_warps(arch, row["registers"],
                                                   row["shared"] + (row["static_shared"] or 0), v.config.num_warps)
    except Exception as e:  # a failed compile is a result, not a crash
        row["compile_s"] = round(time.perf_counter() - t0, 2)
        row["error"] = f"{type(e).__name__}: {e}"[:4000]
    return row


# ---------------------------------------------------------------- many variants

def _can_compile_here() -> bool:
    """True when the kernels in this process are JITFunctions (TRITON_INTERPRET was not on)."""
    if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
        return False
    try:
        from triton.runtime.jit import JITFunction

        return all(isinstance(spec.jit_fn(), JITFunction) for spec in KERNELS.values())
    except Exception:
        return False


def _subprocess_env() -> dict:
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    return env


def _check_in_subprocesses(tasks: list[tuple[LaunchVariant, int]], jobs: int) -> list[dict]:
    shards = [list(range(i, len(tasks), jobs)) for i in range(jobs)]
    rows: list[dict | None] = [None] * len(tasks)
    with tempfile.TemporaryDirectory(prefix="fi_compile_check_") as tmp:
        procs = []
        for i, shard in enumerate(shards):
            if not shard:
                continue
            spec_file = Path(tmp) / f"tasks{i}.json"
            out_file = Path(tmp) / f"rows{i}.json"
            spec_file.write_text(json.dumps([[tasks[j][0].to_dict(), tasks[j][1]] for j in shard]))
            cmd = command_line("compile-check", "--worker", "--tasks", str(spec_file), "--rows-out", str(out_file))
            log = open(Path(tmp) / f"log{i}.txt", "w+")
            procs.append((shard, out_file, log, subprocess.Popen(
                cmd, env=_subprocess_env(), stdout=log, stderr=subprocess.STDOUT)))
        for shard, out_file, log, proc in procs:
            rc = proc.wait()
            log.seek(0)
            tail = log.read()[-3000:]
            log.close()
            got = json.loads(out_file.read_text()) if out_file.exists() else []
            for j, row in zip(shard, got):
                rows[j] = row
            for j in shard[len(got):]:
                v, arch = tasks[j]
                rows[j] = _empty_row(v, arch)
                rows[j]["error"] = f"compile worker exited with {rc} before this variant: {tail}"
    return rows  # type: ignore[return-value]


def check(archs: Iterable[int], variants: Sequence[LaunchVariant] | None = None,
          jobs: int | None = None) -> list[dict]:
    """One row per (arch, variant), archs outer; every launchable variant by default.

    ``jobs`` compile processes (default: the CPU count); with jobs=1 and the kernels compilable
    here, everything runs in this process.
    """
    variants = launch_variants() if variants is None else list(variants)
    tasks = [(v, int(a)) for a in archs for v in variants]
    if not tasks:
        return []
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    if jobs == 1 and _can_compile_here():
        return [check_variant(v, a) for v, a in tasks]
    return _check_in_subprocesses(tasks, jobs)


# ---------------------------------------------------------------- verdicts and report

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
    k = f" k={row['ksize']}" if row.get("ksize") is not None else ""
    spec = ""
    if _row_set(row) == "launched":
        spec = f" launched[{row.get('ints')}] ({launches_label(row.get('launches') or [])})"
    return (f"{row['kernel']}/{row['config']} {row['dtype']} {row['precision']}{k} "
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
    ("barriers", "bar"), ("resident_warps", "warps/SM"), ("status", "status"),
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


_BRANCH_SHORT = {"b1p": "", "b3": "3", "b5": "5"}
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


# ---------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="80,90",
                        help="comma-separated compute capabilities to compile for (default: 80,90)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    parser.add_argument("--kernel", action="append", choices=sorted(KERNELS),
                        help="only this kernel (repeatable; default: all)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="parallel compile processes (default: CPU count)")
    parser.add_argument("--variants", metavar="PATH",
                        help="JSON list of LaunchVariant dicts to check instead of the shipped ones")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--generic-only", action="store_true",
                       help="only the generic variants (no divisibility hints: any shape)")
    which.add_argument("--launched-only", action="store_true",
                       help="only the specializations GoogLeNet's blocks launch")
    parser.add_argument("--allow-spills", action="store_true",
                        help="report spills without failing on them (CI's check of the triton lower end, "
                             "where only compile errors and instruction selection are held: docs/DESIGN.md §6.4)")
    parser.add_argument("--batch", default=",".join(map(str, GOOGLENET_BATCHES)),
                        help="comma-separated batch sizes of the launched specializations "
                             f"(default: {','.join(map(str, GOOGLENET_BATCHES))})")
    # internal: a compile worker (see _check_in_subprocesses)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", help=argparse.SUPPRESS)
    parser.add_argument("--rows-out", help=argparse.SUPPRESS)


def _worker(args: argparse.Namespace) -> int:
    if not _can_compile_here():
        print("compile worker: kernels are not JITFunctions (TRITON_INTERPRET set?)", file=sys.stderr)
        return 2
    tasks = [(LaunchVariant.from_dict(v), int(a)) for v, a in json.loads(Path(args.tasks).read_text())]
    rows = []
    for v, arch in tasks:
        rows.append(check_variant(v, arch))
        # rewrite after every variant: a crash loses only the variant being compiled
        tmp = Path(args.rows_out + ".tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(args.rows_out)
    return 0


def run(args: argparse.Namespace) -> int:
    """The compile-check subcommand: table, summary, optional JSON; 1 if anything fails."""
    if getattr(args, "worker", False):
        return _worker(args)
    archs = parse_args_arch(args.arch)
    if getattr(args, "variants", None):
        variants = [LaunchVariant.from_dict(d) for d in json.loads(Path(args.variants).read_text())]
        if args.kernel:
            variants = [v for v in variants if v.kernel in args.kernel]
    else:
        variants = []
        if not getattr(args, "launched_only", False):
            variants += launch_variants(args.kernel)
        if not getattr(args, "generic_only", False):
            batches = [int(b) for b in csv_list(getattr(args, "batch", None) or "")] or list(GOOGLENET_BATCHES)
            variants += googlenet_launch_variants(args.kernel, batches)
    unknown = [a for a in archs if a not in SMEM_LIMIT]
    if unknown:
        print(f"warning: no shared-memory limit known for sm_{unknown}; not checked", file=sys.stderr)
    t0 = time.perf_counter()
    rows = check(archs, variants, jobs=getattr(args, "jobs", None))
    elapsed = time.perf_counter() - t0
    for which, title in (("generic", "Generic variants (ints without divisibility hints: any shape)"),
                         ("launched", "Launched specializations (what GoogLeNet's blocks run; compiled, not measured)")):
        part = [r for r in rows if _row_set(r) == which]
        if part:
            print(f"{title}: {len(part)} compiles")
            print(format_table(part))
            print()
    allow_spills = getattr(args, "allow_spills", False)
    print(summary(rows, allow_spills))
    fails = failures(rows, allow_spills)
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"{len(rows)} compiles in {elapsed:.1f} s; {len(fails)} failing")
    for line in fails:
        print(f"FAIL {line}")
    if allow_spills:
        for line in spilling(rows):
            print(f"SPILL (reported, not failed: --allow-spills) {line}")
    return 1 if fails else 0

