"""The optimizer: fused AdamW on a CPU, taking the steps torch's default AdamW takes."""

from __future__ import annotations

import torch
from torch import nn

from tunesmith.training.loop import build_optimizer


def _params(seed: int) -> list[nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(shape, generator=gen)) for shape in ((16, 24), (40, 16), (7,))]


def test_a_cpu_run_gets_fused_adamw_with_the_default_s_steps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fused_params, plain_params = _params(0), _params(0)
    fused = build_optimizer(fused_params, 1e-2, 0.1)
    plain = torch.optim.AdamW(plain_params, lr=1e-2, weight_decay=0.1, foreach=False)
    assert fused.defaults["fused"] is True
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        for a, b in zip(fused_params, plain_params, strict=True):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        fused.step()
        plain.step()
    for a, b, start in zip(fused_params, plain_params, _params(0), strict=True):
        assert ((a - start).abs() > 0).all()  # every entry moved
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # its state loads into the default optimizer and back (checkpoints stay portable)
    plain.load_state_dict(fused.state_dict())
    fused.load_state_dict(plain.state_dict())
    fused.step()
