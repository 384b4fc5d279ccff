"""The shared transformer blocks: the last-position-only forward equals the full one's last position."""

from __future__ import annotations

import pytest
import torch

from fave.models.blocks import TransformerEncoder
from fave.models.flow_backbone import BackboneConfig, FlowBackbone


def history(B: int = 3, L: int = 7, N: int = 20) -> torch.Tensor:
    h = torch.randint(1, N + 1, (B, L), generator=torch.Generator().manual_seed(0))
    h[0, :3] = 0  # left padding in one row
    return h


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("rotary", [True, False])
@pytest.mark.parametrize("math_attention", [True, False])
def test_last_only_is_the_last_position_of_the_full_forward(causal, rotary, math_attention) -> None:
    torch.manual_seed(0)
    enc = TransformerEncoder(16, 2, 3, 0.1, use_rotary=rotary, math_attention=math_attention).eval()
    h = history()
    x = torch.randn(*h.shape, 16)
    with torch.no_grad():
        full, full_outs = enc(x, h, causal)
        last, last_outs = enc(x, h, causal, last_only=True)
    assert last.shape == (3, 1, 16) and last_outs[-1].shape == (3, 1, 16)
    torch.testing.assert_close(last[:, 0], full[:, -1], rtol=1e-5, atol=1e-6)
    for a, b in zip(full_outs[:-1], last_outs[:-1], strict=True):  # the earlier blocks are untouched
        torch.testing.assert_close(a, b)


def test_last_only_must_not_change_the_full_forward() -> None:
    """A wrong slice (e.g. the first position) would still have the right shape: compare values."""
    torch.manual_seed(1)
    enc = TransformerEncoder(16, 2, 2, 0.0, use_rotary=True).eval()
    h = history()
    x = torch.randn(*h.shape, 16)
    with torch.no_grad():
        full, _ = enc(x, h, causal=True)
        last, _ = enc(x, h, causal=True, last_only=True)
    assert not torch.allclose(last[:, 0], full[:, 0], atol=1e-3)


def test_backbone_last_only_matches() -> None:
    torch.manual_seed(0)
    net = FlowBackbone(BackboneConfig(hidden=16, heads=2, layers=2, max_len=7), 20, causal=True).eval()
    h = history()
    x_t, t = torch.randn(3, 16), torch.rand(3)
    with torch.no_grad():
        f_full, _ = net(h, x_t, t, torch.ones_like(t))
        f_last, _ = net(h, x_t, t, torch.ones_like(t), last_only=True)
    torch.testing.assert_close(f_last[:, -1], f_full[:, -1], rtol=1e-5, atol=1e-6)


def test_rotary_of_q_and_k_stacked_is_exactly_one_call_each() -> None:
    """The blocks rotate q and k in one call: elementwise, so bit for bit the two calls' numbers."""
    from fave.models.blocks import rotary

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 3, 2, 7, 8, generator=g).unbind(0)
    both = rotary(torch.stack([q, k]))
    assert torch.equal(both[0], rotary(q)) and torch.equal(both[1], rotary(k))


def test_rms_norm_exports_in_the_division_form_and_keeps_rsqrt_in_eager() -> None:
    """Under torch.export the norm is written x / sqrt(...) (ONNX Runtime fuses that pattern into one
    kernel); eager torch keeps x * rsqrt(...), so training numbers do not move."""
    from fave.models.blocks import RMSNorm

    norm = RMSNorm(8).eval()
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    program = torch.export.export(norm, (x,))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert any("sqrt" in o and "rsqrt" not in o for o in ops) and not any("rsqrt" in o for o in ops)
    torch.testing.assert_close(program.module()(x), norm(x), rtol=1e-6, atol=1e-6)
    eager = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight
    assert torch.equal(norm(x), eager)
