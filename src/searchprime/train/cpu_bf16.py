"""bf16 autocast on a CPU without native bf16, at fp32's speed.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the matrix products take bf16 inputs and
give bf16 outputs. A CPU with AVX512-BF16 or AMX computes them natively; on an AVX2-only CPU
torch 2.13 falls back to an emulation that is one-threaded and ~25x slower than fp32 for
SmolLM2 (the SFT step of ``bench/study.yaml``: 402 s against 32 s in fp32; profiled, 94% of
the step in ``aten::mm`` and most of the rest in the bf16 flash-attention backward).

:func:`bf16_products_in_fp32` runs those products on the fp32 kernels instead: each bf16
operand is widened to fp32 (exact), the fp32 kernel multiplies and accumulates in fp32, and
the result is rounded back to bf16. That is what a native bf16 product does too (bf16 inputs,
fp32 accumulation, one rounding), so every op keeps autocast's dtypes in and out; only the
order of the fp32 additions differs, as it does between any two CPU kinds' kernels (on random
operands it matches the correctly rounded product on 99.99% of the entries, like the
native kernels). The flash-attention backward run in fp32 keeps its internal probabilities in
fp32 where the bf16 kernel rounds them to bf16 before its products: a more precise gradient
of the same op.

Written by hand because no library covers it: torch has no switch for this, and
``torch.set_float32_matmul_precision`` acts on fp32 products, not bf16 ones.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from searchprime._lazy import require

__all__ = ["bf16_products_in_fp32", "cpu_bf16_context", "cpu_has_native_bf16"]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX)."""
    torch = require("torch", "train")
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


@functools.cache
def _mode_class() -> type:
    torch = require("torch", "train")
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    products = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm}  # every overload: out= too
    in_place = {aten.addmm_: aten.addmm.default, aten.baddbmm_: aten.baddbmm.default}
    attention_backward = aten._scaled_dot_product_flash_attention_for_cpu_backward.default
    bf16, fp32 = torch.bfloat16, torch.float32

    def is_cpu_bf16(x: object) -> bool:
        return isinstance(x, torch.Tensor) and x.dtype == bf16 and x.device.type == "cpu"

    def widen(args: tuple) -> list:
        return [a.to(fp32) if is_cpu_bf16(a) else a for a in args]

    def narrow(x: object) -> object:
        return x.to(bf16) if isinstance(x, torch.Tensor) and x.dtype == fp32 else x

    class Bf16ProductsInFp32(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            kwargs = dict(kwargs or {})
            packet = func.overloadpacket
            if not any(is_cpu_bf16(a) for a in args):
                return func(*args, **kwargs)
            if packet in products:
                out = kwargs.pop("out", None)
                result = packet.default(*widen(args), **kwargs)
                return narrow(result) if out is None else out.copy_(result)
            if packet in in_place:  # addmm_(self, a, b): self is both bias and output
                return args[0].copy_(in_place[packet](*widen(args), **kwargs))
            if func is attention_backward:
                return tuple(narrow(o) for o in func(*widen(args), **kwargs))
            return func(*args, **kwargs)

    return Bf16ProductsInFp32


def bf16_products_in_fp32() -> contextlib.AbstractContextManager[Any]:
    """A context in which bf16 CPU matrix products (and the flash-attention backward) run on
    fp32 kernels and return bf16, as the native kernels would. Thread-local, like every torch
    dispatch mode; the CPU autograd engine runs the backward on the calling thread, so a
    ``loss.backward()`` inside the context is covered."""
    return _mode_class()()


def cpu_bf16_context(bf16: bool, device: str) -> contextlib.AbstractContextManager[Any]:
    """:func:`bf16_products_in_fp32` where bf16 is asked for on a CPU (``device`` ``"cpu"``)
    without native bf16; a no-op context elsewhere."""
    if bf16 and device == "cpu" and not cpu_has_native_bf16():
        return bf16_products_in_fp32()
    return contextlib.nullcontext()
