"""Compiling kernel variants ahead of time and reading their binaries (no GPU needed).

For each :class:`~fused_inception.tools.compile_check.aot.LaunchVariant` and target arch,
:func:`check_variant` runs ``triton.compile`` for ``GPUTarget("cuda", arch, 32)`` and inspects the
cubin with the tools that ship in the triton wheel (``triton/backends/nvidia/bin``):

* ``cuobjdump --dump-resource-usage``: REG, STACK, SHARED (static), LOCAL;
* ``cuobjdump -sass``: the instructions of the largest loop body (:func:`loop_instructions`: what
  one warp issues per iteration of the kernel's main K loop; ``plan``'s issue bound uses it),
  tensor-core instructions (HMMA = mma.sync, HGMMA = wgmma), async copies
  (LDGSTS = cp.async, UTMALDG = TMA load) and barriers (BAR.*: CTA barriers; SYNCS.*: mbarrier
  operations of async copies and wgmma), counted statically in the code;
* ``ptxas -v`` on the kernel's PTX, with triton's own flags: spill stores / loads;
* ``compiled.metadata.shared``: the dynamic shared memory triton launches with.

Each (variant, arch) gives one row, a dict (:func:`_empty_row` lists its fields); a failed compile
is a row with an ``error``, never an exception. ``report.py`` judges and prints the rows.

From registers and shared memory it derives the **resident warps per SM** (:func:`resident_warps`,
the figures in :data:`SM_LIMITS`): what bounds latency hiding when every program runs one serial
chain of loads and MMAs. :data:`SMEM_LIMIT` is the shared memory one block may use per arch.

Triton compiles ahead of time only when the kernels are ``JITFunction`` s, i.e. when
``TRITON_INTERPRET`` was not "1" when they were decorated (the CPU test suite sets it). In that
case, and to use more than one core (triton.compile holds the GIL), :func:`check` runs the work in
``python -m fused_inception compile-check --worker`` subprocesses with ``TRITON_INTERPRET`` removed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from fused_inception.tools.compile_check.aot import (KERNELS, LaunchVariant, compile_options, compile_spec,
                                                     launch_variants)
from fused_inception.tools.cli import command_line

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


# ---------------------------------------------------------------- one variant

_SASS_LINE_RE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+([^;]*);", re.MULTILINE)
_BACK_BRANCH_RE = re.compile(r"\bBRA\s+0x([0-9a-f]+)")


def loop_instructions(sass: str) -> int:
    """Instructions of the largest loop in ``cuobjdump -sass`` text: the longest span from a
    backward branch's target to the branch, both included (0 without a loop). Static: a span
    holding an inner loop or a branch around rare code counts them once."""
    lines = [(int(a, 16), text) for a, text in _SASS_LINE_RE.findall(sass)]
    best = 0
    for addr, text in lines:
        m = _BACK_BRANCH_RE.search(text)
        if m and int(m.group(1), 16) <= addr:
            target = int(m.group(1), 16)
            best = max(best, sum(1 for a, _ in lines if target <= a <= addr))
    return best


def _empty_row(v: LaunchVariant, arch: int) -> dict:
    options = compile_options(v)
    return {
        # a config's aligned tiles are "<name> aligned": the table tells them apart
        "kernel": v.kernel, "config": v.config_name + (" aligned" if v.aligned else ""), "dtype": v.dtype,
        "precision": v.input_precision, "ksize": v.ksize, "relu": v.relu, "layout": v.layout,
        # num_stages None: the launch leaves triton's default
        "arch": arch, "num_warps": options["num_warps"], "num_stages": options.get("num_stages"),
        "registers": None, "stack": None, "spill_stores": None, "spill_loads": None,
        "local": None, "shared": None, "static_shared": None, "smem_limit": SMEM_LIMIT.get(arch),
        "hmma": None, "hgmma": None, "ldgsts": None, "utmaldg": None, "barriers": None, "loop_instructions": None,
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
            row["loop_instructions"] = loop_instructions(sass)
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
                                                   row["shared"] + (row["static_shared"] or 0), row["num_warps"])
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
    """One row per (arch, variant) that the arch runs (LaunchVariant.compiled_for: aligned tiles
    only for their archs), archs outer; every launchable variant by default.

    ``jobs`` compile processes (default: the CPU count); with jobs=1 and the kernels compilable
    here, everything runs in this process.
    """
    variants = launch_variants() if variants is None else list(variants)
    tasks = [(v, int(a)) for a in archs for v in variants if v.compiled_for(int(a))]
    if not tasks:
        return []
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    if jobs == 1 and _can_compile_here():
        return [check_variant(v, a) for v, a in tasks]
    return _check_in_subprocesses(tasks, jobs)
