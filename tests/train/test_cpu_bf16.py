"""bf16 products on fp32 kernels: same dtypes and rounding as native bf16, backward included,
and used by the SFT exactly where bf16 is asked for on a CPU without native bf16."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from searchprime.train import cpu_bf16
from searchprime.train.cpu_bf16 import bf16_products_in_fp32, cpu_bf16_context
from searchprime.train.sft import SFTRunConfig, run_sft

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU kernels only")

PRODUCTS = ("mm", "addmm", "bmm", "baddbmm", "_scaled_dot_product_flash_attention_for_cpu_backward")


class Recorder(TorchDispatchMode):
    """Below the mode under test: sees the dtypes the kernels actually get."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, set[torch.dtype]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = func.overloadpacket.__name__
        if name in PRODUCTS:
            dtypes = {a.dtype for a in args if isinstance(a, torch.Tensor)}
            self.seen.append((name, dtypes))
        return func(*args, **(kwargs or {}))


def _operands(m: int, k: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(m, k, generator=g).bfloat16(),
        torch.randn(k, n, generator=g).bfloat16(),
    )


def test_a_product_is_the_fp32_product_of_the_operands_rounded_once() -> None:
    a, b = _operands(96, 320, 64)
    with bf16_products_in_fp32():
        got = a @ b
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, (a.float() @ b.float()).bfloat16())
    exact = (a.double() @ b.double()).bfloat16()
    stock = a @ b  # torch's own bf16 kernel, outside the context
    # both round the exact product correctly on nearly every entry; only addition order differs
    assert (got == exact).float().mean() > 0.999
    assert (stock == exact).float().mean() > 0.999


def test_batched_and_bias_products_keep_their_dtypes() -> None:
    a, b = _operands(8, 16, 12)
    bias = torch.randn(12).bfloat16()
    with bf16_products_in_fp32():
        lin = F.linear(a, b.t(), bias)
        batched = torch.bmm(a[None].expand(3, -1, -1), b[None].expand(3, -1, -1))
        mixed = torch.mm(a.float(), b.float())  # fp32 products are left alone
        tile = torch.empty(8, 12, dtype=torch.bfloat16)
        into = torch.mm(a, b, out=tile)  # TRL's chunked log-prob kernel writes products so
        acc = bias.expand(8, 12).clone()
        acc.addmm_(a, b)
    assert lin.dtype == batched.dtype == torch.bfloat16 and mixed.dtype == torch.float32
    assert into is tile and torch.equal(tile, (a.float() @ b.float()).bfloat16())
    assert torch.equal(acc, (bias.float() + a.float() @ b.float()).bfloat16())
    assert torch.equal(lin, (a.float() @ b.float() + bias.float()).bfloat16())
    assert torch.equal(batched[2], (a.float() @ b.float()).bfloat16())


def _autocast_step(q_len: int = 24) -> torch.Tensor:
    """An attention block's forward and backward under bf16 autocast; the weights' grad."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(32, 32, generator=g, requires_grad=True)
    x = torch.randn(1, 2, q_len, 16, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = (x.reshape(-1, 32) @ w).reshape(1, 2, q_len, 16)
        out = F.scaled_dot_product_attention(h, h, h, is_causal=True)
    out.float().square().sum().backward()
    return w.grad


def test_the_backward_runs_on_fp32_kernels_too() -> None:
    under = Recorder()
    with under, bf16_products_in_fp32():
        grad = _autocast_step()
    names = {name for name, _ in under.seen}
    assert {"mm", "_scaled_dot_product_flash_attention_for_cpu_backward"} <= names
    assert all(torch.bfloat16 not in dtypes for _, dtypes in under.seen)
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()

    stock = Recorder()
    with stock:
        stock_grad = _autocast_step()
    assert any(torch.bfloat16 in dtypes for _, dtypes in stock.seen)  # the check can fail
    assert torch.allclose(grad, stock_grad, rtol=0.05, atol=0.05 * stock_grad.abs().max())


@pytest.mark.parametrize(("bf16", "device", "native", "used"), [
    (True, "cpu", False, True),
    (True, "cpu", True, False),
    (False, "cpu", False, False),
    (True, "cuda", False, False),
])  # fmt: skip
def test_the_context_is_used_only_for_bf16_on_a_cpu_without_it(
    monkeypatch, bf16, device, native, used
) -> None:
    monkeypatch.setattr(cpu_bf16, "cpu_has_native_bf16", lambda: native)
    ctx = cpu_bf16_context(bf16, device)
    assert isinstance(ctx, contextlib.nullcontext) is not used


@pytest.mark.parametrize("native", [False, True])
def test_sft_in_bf16_trains_on_fp32_kernels_where_bf16_is_not_native(
    tiny_model, turn_data, tmp_path, monkeypatch, native
) -> None:
    monkeypatch.setattr(cpu_bf16, "cpu_has_native_bf16", lambda: native)
    trl = {"per_device_train_batch_size": 2, "max_length": 256, "max_steps": 2, "bf16": True}
    run = SFTRunConfig(
        model=str(tiny_model), data=str(turn_data), output_dir=str(tmp_path), trl=trl
    )
    under = Recorder()
    with under:
        summary = run_sft(run)
    assert summary.steps == 2 and summary.first_loss > 0
    bf16_products = [name for name, dtypes in under.seen if torch.bfloat16 in dtypes]
    assert under.seen and (bf16_products == []) is not native
