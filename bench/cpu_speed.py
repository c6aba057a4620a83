"""Is bf16 native on this CPU? Seconds of a fixed SFT-like workload (SmolLM2-135M's MLP shapes,
forward and backward on the default threads) in fp32, the baseline, and under bf16 autocast as
the trainer runs it (``sft.trl.bf16``), with their ratio.

    python bench/cpu_speed.py
    fp32 1.44 s, bf16 autocast 42.94 s: bf16 / fp32 29.8x (native bf16: False)

Without AVX512-BF16 or AMX, bf16 products are emulated on one core: the study's bf16 SFT
(bench/study.yaml) ran 402 s a step on the AMD EPYC (AVX2) VM of 2026-12-02, 32 s a step in
fp32 there, 22 s in bf16 on an Intel VM with AMX. Run it on idle cores.
"""

from __future__ import annotations

import contextlib
import time

import torch


def workload_seconds(bf16: bool = False, iterations: int = 15, budget_s: float = 30.0) -> float:
    """Best of up to three timed passes (fewer once ``budget_s`` is spent) of ``iterations``
    MLP forward/backward steps on 1,024 tokens."""
    torch.manual_seed(0)
    hidden, inner, tokens = 576, 1536, 1024
    w_in = torch.randn(hidden, inner, requires_grad=True)
    w_out = torch.randn(inner, hidden, requires_grad=True)
    x = torch.randn(tokens, hidden)

    def step() -> None:
        cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
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
    from searchprime.train.sft import cpu_has_native_bf16

    fp32 = workload_seconds()
    bf16 = workload_seconds(bf16=True)
    print(
        f"fp32 {fp32:.2f} s, bf16 autocast {bf16:.2f} s: bf16 / fp32 {bf16 / fp32:.1f}x "
        f"(native bf16: {cpu_has_native_bf16()})"
    )


if __name__ == "__main__":
    main()
