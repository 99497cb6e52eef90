"""Datasheet peaks of the GPUs the plan models: H100 SXM and H200 SXM (the roofline tables) and
H100 PCIe (the GPU of the published timings the latency model is calibrated against)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    """Datasheet peaks of one GPU. FLOP/s are dense (no sparsity)."""

    name: str
    half_tflops: float  # dense bf16/fp16 tensor-core TFLOP/s
    tf32_tflops: float  # dense TF32 tensor-core TFLOP/s
    fp32_tflops: float  # fp32 non-tensor (CUDA-core) TFLOP/s
    hbm_tbps: float  # HBM bandwidth, TB/s (1e12 bytes/s)
    l2_mb: float  # L2 capacity, MB
    sms: int  # streaming multiprocessors (sizes the persistent grid)
    source: str = "NVIDIA datasheet"

    def peak_flops(self, dtype: str, math_kind: str, tf32: bool) -> float:
        """FLOP/s for a launch whose matrix work is ``math_kind`` ("conv", "matmul" or "none")."""
        if math_kind == "none":
            return self.fp32_tflops * 1e12
        if dtype in ("float16", "bfloat16"):
            return self.half_tflops * 1e12
        # fp32: convs (and the fused kernels, which follow the same rule) use TF32 when
        # torch.backends.cudnn.allow_tf32 is set; the linear layer follows the matmul precision,
        # "highest" (IEEE fp32) by default.
        if math_kind == "conv" and tf32:
            return self.tf32_tflops * 1e12
        return self.fp32_tflops * 1e12


# H100 SXM5 and H200 SXM are the same GH100 chip (132 SMs, 50 MB L2); H200 has faster, larger HBM.
H100_SXM = GPU("H100 SXM", half_tflops=989.4, tf32_tflops=494.7, fp32_tflops=66.9, hbm_tbps=3.35, l2_mb=50.0, sms=132)
H200_SXM = GPU("H200 SXM", half_tflops=989.4, tf32_tflops=494.7, fp32_tflops=66.9, hbm_tbps=4.8, l2_mb=50.0, sms=132)
GPUS = (H100_SXM, H200_SXM)
# Not in the roofline tables: the GPU of the published KernelBench timings the latency model is
# calibrated against (kernelbench.py). 114 SMs, HBM2e; PCIe power limit 350 W.
H100_PCIE = GPU("H100 PCIe", half_tflops=756.0, tf32_tflops=378.0, fp32_tflops=51.2, hbm_tbps=2.0, l2_mb=50.0, sms=114)
