"""``python -m fused_inception compile-check``: every kernel variant the library can launch,
compiled ahead of time (no GPU needed); the options, which variants, the printed report and the
exit code.

Two sets of variants (``fused_inception.tools.compile_check.aot``): the **generic** ones (ints without
divisibility hints, only the memory format's unit strides specialized: any shape) and the
**launched** specializations, recorded from the library's own forward of GoogLeNet's nine blocks
(paper and torchvision, NCHW and channels_last, batches 1 and 256 by default) and specialized as
triton's JIT does (ints equal to 1 become constexprs, ints divisible by 16 get
``tt.divisibility = 16``), deduplicated. The JIT compiles the latter on a GPU, so they are the
binaries GoogLeNet runs; the generic ones bound every other shape. The stem's epilogue kernel
(bn_relu_pool, recorded from the library's stem epilogue on the torchvision stem) has launched
specializations only: ``--kernel bn_relu_pool`` compiles just those.

Compiling and reading the binaries: ``compiling.py`` (also in the ``--worker`` subprocesses this
command starts, :func:`_worker`); the verdicts, table and summary: ``report.py``. The command
exits 1 if any variant fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fused_inception.tools.compile_check.aot import (
    GOOGLENET_BATCHES,
    KERNELS,
    LaunchVariant,
    googlenet_launch_variants,
    launch_variants,
)
from fused_inception.tools.compile_check.compiling import SMEM_LIMIT, _can_compile_here, check, check_variant
from fused_inception.tools.compile_check.report import _row_set, failures, format_table, spilling, summary
from fused_inception.tools.tables import csv_list

DESCRIPTION = ("compile every launchable kernel variant (generic, and the specializations GoogLeNet's "
               "blocks launch) ahead of time for the given archs (no GPU needed) and report registers, "
               "spills, shared memory, tensor-core instructions (HMMA/HGMMA), async copies (LDGSTS/UTMALDG), "
               "barriers and resident warps per SM")


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
    # internal: a compile worker (see compiling._check_in_subprocesses)
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
