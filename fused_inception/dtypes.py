"""Names of the kernels' dtypes, in their three spellings, and of the compute settings.

The kernels take float32, float16 and bfloat16 (``kernels.configs.DTYPES``, their home). A dtype
is spelled three ways across the package and its commands:

* the torch dtype, ``torch.float16``;
* its full name, ``"float16"`` (the kernels' configs, the tolerance table, the plan model);
* its short name, ``"fp16"`` (command-line options and table columns).

A *compute setting* adds the dot precision: ``"tf32"`` is float32 data with TF32 tensor-core dots,
the other three short names use IEEE dots.
"""

from __future__ import annotations

import torch

from .kernels.configs import DTYPES as DTYPE_NAMES

__all__ = ["COMPUTE_SETTINGS", "DTYPE_NAMES", "KERNEL_DTYPES", "SHORT_NAMES", "dtype_from_name", "dtype_name",
           "short_name"]

# the kernels' dtypes as torch dtypes, in kernels.configs.DTYPES order (float32, float16, bfloat16)
KERNEL_DTYPES: tuple[torch.dtype, ...] = tuple(getattr(torch, name) for name in DTYPE_NAMES)

# short name -> torch dtype, one entry per kernel dtype
SHORT_NAMES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# compute setting -> (torch dtype, the dots' input precision as kernels.configs names it)
COMPUTE_SETTINGS: dict[str, tuple[torch.dtype, str]] = {
    "fp32": (torch.float32, "ieee"),
    "tf32": (torch.float32, "tf32"),
    "fp16": (torch.float16, "ieee"),
    "bf16": (torch.bfloat16, "ieee"),
}


def dtype_name(dtype: torch.dtype) -> str:
    """The full name of a torch dtype: ``torch.float16`` -> ``"float16"``."""
    return str(dtype).removeprefix("torch.")


def short_name(dtype: torch.dtype | str) -> str:
    """The short name of a kernel dtype, given as a torch dtype or a full name:
    ``torch.float16`` or ``"float16"`` -> ``"fp16"``. Raises ValueError for other dtypes."""
    full = dtype if isinstance(dtype, str) else dtype_name(dtype)
    for short, kernel_dtype in SHORT_NAMES.items():
        if dtype_name(kernel_dtype) == full:
            return short
    raise ValueError(f"no short name for dtype {dtype!r}; expected one of {DTYPE_NAMES}")


def dtype_from_name(name: str) -> torch.dtype:
    """The torch dtype of a kernel dtype's short or full name: ``"fp16"`` or ``"float16"`` ->
    ``torch.float16``. Raises ValueError for other names."""
    if name in SHORT_NAMES:
        return SHORT_NAMES[name]
    if name in DTYPE_NAMES:
        return getattr(torch, name)
    raise ValueError(f"unknown dtype {name!r}; expected one of {(*SHORT_NAMES, *DTYPE_NAMES)}")
