"""Is bf16 native on this CPU? Seconds of a fixed SFT-like workload (SmolLM2-135M's MLP shapes,
forward and backward on the default threads) in fp32, the baseline; under bf16 autocast on
torch's own kernels; and under bf16 autocast with the products on fp32 kernels
(``train/cpu_bf16.py``, what the SFT does with ``sft.trl.bf16`` on a CPU without native bf16),
with their ratios to fp32.

    python bench/cpu_speed.py
    fp32 3.63 s | bf16 autocast 40.48 s (11.2x) | on fp32 kernels 6.23 s (1.7x) | native: False

(an AMD EPYC with AVX2, beside a running study: load 1.6-3.0; idle, fp32 1.44 s and bf16
42.94 s.) Without AVX512-BF16 or AMX, torch emulates bf16 products on one core: the study's
bf16 SFT (bench/study.yaml) ran 402 s a step there, 32 s in fp32, ~30 s with its products on
fp32 kernels, 22 s in bf16 on an Intel VM with AMX. The MLP alone pays the widening of its
weights at every product (1.7x); a whole SmolLM2 forward and backward on 900 tokens took 7.5 s
on fp32 kernels against 7.2 s in fp32 and 179 s on torch's bf16 kernels (idle). Run it on idle
cores.
"""

from __future__ import annotations

import contextlib
import time

import torch


def workload_seconds(
    bf16: bool = False,
    fp32_kernels: bool = False,
    iterations: int = 15,
    budget_s: float = 30.0,
) -> float:
    """Best of up to three timed passes (fewer once ``budget_s`` is spent) of ``iterations``
    MLP forward/backward steps on 1,024 tokens (``fp32_kernels``: bf16's products on fp32
    kernels)."""
    from searchprime.train.cpu_bf16 import bf16_products_in_fp32

    torch.manual_seed(0)
    hidden, inner, tokens = 576, 1536, 1024
    w_in = torch.randn(hidden, inner, requires_grad=True)
    w_out = torch.randn(inner, hidden, requires_grad=True)
    x = torch.randn(tokens, hidden)

    def step() -> None:
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        kernels = bf16_products_in_fp32() if fp32_kernels else contextlib.nullcontext()
        with kernels:
            with cast:
                loss = (torch.nn.functional.silu(x @ w_in) @ w_out).float().square().mean()
            loss.backward()

    step()  # warm-up: allocations, thread pool
    best, spent = float("inf"), 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(iterations):
            step()
        took = time.perf_counter() - t0
        best, spent = min(best, took), spent + took
        if spent > budget_s:
            break
    return best


def main() -> None:
    from searchprime.train.cpu_bf16 import cpu_has_native_bf16

    fp32 = workload_seconds()
    bf16 = workload_seconds(bf16=True)
    widened = workload_seconds(bf16=True, fp32_kernels=True)
    print(
        f"fp32 {fp32:.2f} s | bf16 autocast {bf16:.2f} s ({bf16 / fp32:.1f}x) | "
        f"on fp32 kernels {widened:.2f} s ({widened / fp32:.1f}x) | native: {cpu_has_native_bf16()}"
    )


if __name__ == "__main__":
    main()
