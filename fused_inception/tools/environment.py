"""Where and with what a result was produced: device, driver, library versions (torch, triton, CUDA,
cuDNN), git commit and a hash of the source, date, command line (the ``environment`` block of the
bench, parity and tune reports)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch

import fused_inception
from fused_inception import kernels
from fused_inception.kernels.configs import config_name, default_configs
from fused_inception.kernels.tuned_configs import (TunedFileError, pick_pointwise_config, pick_reduce_conv_config,
                                                   tuned_table)

# the package's folder (fused_inception/, where this file's tools/ lives) and the checkout above it
PACKAGE_DIR = Path(fused_inception.__file__).resolve().parent


def _git_commit() -> str:
    """HEAD of the checkout this package runs from (with -dirty), else $FUSED_INCEPTION_GIT_COMMIT
    (for a copy of the tree without .git, e.g. on a device machine), else "unknown" (then the
    report's ``source_hash`` identifies the code)."""
    root = PACKAGE_DIR.parent
    fallback = os.environ.get("FUSED_INCEPTION_GIT_COMMIT") or "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return fallback
    if not commit:
        return fallback
    return commit + ("-dirty" if dirty else "")


def source_hash() -> str:
    """sha256 (first 16 hex digits) of the package's code: every .py and .json file under
    ``fused_inception/`` and ``kernels/`` (the ``fused_inception.kernels`` package, wherever it is
    installed from), by relative path and content, in sorted order. It identifies the code on a
    copy of the tree without .git; the same call in a checkout gives the value to compare with."""
    package = PACKAGE_DIR
    kernels_dir = Path(kernels.__file__).resolve().parent
    files = []
    for prefix, root in (("fused_inception", package), ("kernels", kernels_dir)):
        for f in root.rglob("*"):
            rel = f.relative_to(root)
            if (f.is_file() and f.suffix in (".py", ".json") and "__pycache__" not in rel.parts
                    and not (root == package and rel.parts[0] == "kernels")):
                files.append((f"{prefix}/{rel.as_posix()}", f))
    digest = hashlib.sha256()
    for name, f in sorted(files):
        digest.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None


def kernel_configs(gpu: str | None) -> tuple[list[dict], str | None]:
    """The config the fused blocks launch per (kernel, dtype, dot precision) on ``gpu`` (a CUDA
    device name; None: no GPU, the defaults), and the tuned file they come from (None: defaults;
    "refused: why" and no rows when this GPU's file is invalid, which the kernels refuse too)."""
    pickers = {"pointwise_pool": pick_pointwise_config, "reduce_conv": pick_reduce_conv_config}
    try:
        table = tuned_table(gpu) if gpu else None
    except TunedFileError as e:  # the kernels refuse to launch with it; the tuner must still run
        return [], f"refused: {e}"
    rows = []
    for kernel, dtype, precision, default in default_configs():
        cfg = pickers[kernel](dtype, precision, gpu)
        rows.append({"kernel": kernel, "dtype": dtype, "input_precision": precision, "config": config_name(cfg),
                     "fields": asdict(cfg), "tuned": cfg != default})
    return rows, (str(table.path) if table else None)


def environment(device: str) -> dict:
    """Where and with what a result was produced (device, versions, commit, date, command line)."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    env = {
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "source_hash": source_hash(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name,
                                                     *getattr(sys, "orig_argv", sys.argv)[1:]]),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET"),
    }
    env["kernel_configs"], env["tuned_configs"] = kernel_configs(env["device_name"] if device == "cuda" else None)
    if device == "cuda":
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        env.update({
            "driver": _nvidia_driver(),
            "compute_capability": f"{props.major}.{props.minor}",
            "sm_count": props.multi_processor_count,
            "gpu_memory_gb": round(props.total_memory / 2**30, 1),
            "l2_cache_mb": round(props.L2_cache_size / 2**20, 1),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
        })
    return env

