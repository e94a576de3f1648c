"""The STAA sub-blocks against independent references and finite differences."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from staa_snn.functional import (
    add_position_encoding,
    gc_context,
    gc_value,
    global_context,
    sinusoidal_position_encoding,
    step_attention,
    step_attention_gates,
    tsrd_drop_mask,
)
from staa_snn.neurons import GlobalContext, StepAttention


def _gcnet_reference(x, gc: GlobalContext):
    """GCNet written with 1x1 Conv2d layers, as in the original block."""
    C, hidden = gc.down.in_features, gc.down.out_features
    key = nn.Conv2d(C, 1, 1).double()
    down = nn.Conv2d(C, hidden, 1).double()
    up = nn.Conv2d(hidden, C, 1).double()
    with torch.no_grad():
        key.weight.copy_(gc.key.weight.view(1, C, 1, 1)); key.bias.copy_(gc.key.bias)
        down.weight.copy_(gc.down.weight.view(hidden, C, 1, 1)); down.bias.copy_(gc.down.bias)
        up.weight.copy_(gc.up.weight.view(C, hidden, 1, 1)); up.bias.copy_(gc.up.bias)
    n, _, h, w = x.shape
    k = torch.softmax(key(x).view(n, h * w), dim=1).view(n, 1, h, w)
    context = (x * k).sum(dim=(2, 3), keepdim=True)
    y = down(context)
    y = F.layer_norm(y, [hidden, 1, 1], gc.norm.weight.view(hidden, 1, 1), gc.norm.bias.view(hidden, 1, 1))
    return x + up(F.relu(y))


def _randomise(module):
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
    return module


def test_gc_matches_conv_reference():
    gc = _randomise(GlobalContext(8, ratio=4)).double()
    x = torch.randn(6, 8, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(gc(x), _gcnet_reference(x, gc))


def test_gc_context_of_a_channel_shift_is_shifted():
    """The identity the fused STAA path relies on: GC(X + P) = X + P + value(context(X) + P)."""
    gc = _randomise(GlobalContext(8, ratio=4)).double()
    x = torch.randn(6, 8, 5, 7, dtype=torch.float64)
    p = torch.randn(8, dtype=torch.float64)
    c = gc_context(x, gc.key.weight, gc.key.bias)
    torch.testing.assert_close(gc_context(x + p.view(8, 1, 1), gc.key.weight, gc.key.bias), c + p)
    v = gc_value(c + p, gc.down.weight, gc.down.bias, gc.norm.weight, gc.norm.bias, gc.up.weight, gc.up.bias)
    torch.testing.assert_close(gc(x + p.view(8, 1, 1)), x + (p + v).view(6, 8, 1, 1))


def test_gc_is_identity_at_init_and_has_expected_parameter_count():
    C, r = 64, 4
    gc = GlobalContext(C, ratio=r)
    x = torch.randn(3, C, 4, 4)
    assert torch.equal(gc(x), x)
    # key C+1, down C*C/r + C/r, LN 2C/r, up C/r*C + C: about 2 C^2 / r
    assert sum(p.numel() for p in gc.parameters()) == (C + 1) + (C * 16 + 16) + 32 + (16 * C + C)


def test_gc_scale_fusion():
    gc = _randomise(GlobalContext(4, ratio=2, fusion="scale")).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    ref_add = GlobalContext(4, ratio=2, fusion="add").double()
    ref_add.load_state_dict(gc.state_dict())
    v = ref_add(x) - x  # the value vector, broadcast
    torch.testing.assert_close(gc(x), x * 2 * torch.sigmoid(v))
    assert torch.equal(GlobalContext(4, ratio=2, fusion="scale")(x.float()), x.float())  # the identity at init


def test_gc_and_sa_gradients_against_finite_differences():
    g = torch.Generator().manual_seed(1)
    d = dict(dtype=torch.float64)
    x = torch.randn(3, 4, 3, 2, generator=g, **d, requires_grad=True)
    params = [torch.randn(s, generator=g, **d, requires_grad=True) for s in [(1, 4), (), (2, 4), (2,), (2,), (2,), (4, 2), (4,)]]
    assert torch.autograd.gradcheck(lambda x, *p: global_context(x, *p, fusion="add"), (x, *params))
    assert torch.autograd.gradcheck(lambda x, *p: global_context(x, *p, fusion="scale"), (x, *params))
    h = torch.randn(3, 4, 2, 2, generator=g, **d, requires_grad=True)
    u = torch.randn(3, 4, 2, 2, generator=g, **d, requires_grad=True)
    w = [torch.randn(s, generator=g, **d, requires_grad=True) for s in [(2, 8), (2,), (8, 2), (8,)]]
    for gate in ("sigmoid", "softmax"):
        fn = lambda h, u, *w, gate=gate: step_attention(h, u, *step_attention_gates(h, u, *w, sa_lambda=2.0, gate=gate))  # noqa: E731
        assert torch.autograd.gradcheck(fn, (h, u, *w))


@pytest.mark.parametrize("gate", ["sigmoid", "softmax"])
def test_sa_gates_start_at_one(gate):
    sa = StepAttention(32, ratio=16, sa_lambda=2.0, gate=gate)
    h, u = torch.randn(5, 32, 3, 3), torch.randn(5, 32, 3, 3)
    g_h, g_u = sa(h, u)
    assert torch.equal(g_h, torch.ones(5, 32)) and torch.equal(g_u, torch.ones(5, 32))
    assert torch.equal(step_attention(h, u, g_h, g_u), h + u)


def test_sa_gate_values_by_hand():
    # C = 1, z = (GAP(h), GAP(u)) = (1, 3); W1 = [[1, 1]], b1 = 0 -> ReLU(4) = 4; W2 = [[0.5], [-0.25]], b2 = 0
    h, u = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0)
    g_h, g_u = step_attention_gates(h, u, torch.tensor([[1.0, 1.0]]), None, torch.tensor([[0.5], [-0.25]]), None, 2.0)
    assert math.isclose(g_h.item(), 2 / (1 + math.exp(-2.0)), rel_tol=1e-6)
    assert math.isclose(g_u.item(), 2 / (1 + math.exp(1.0)), rel_tol=1e-6)
    g_h, g_u = step_attention_gates(h, u, torch.tensor([[1.0, 1.0]]), None, torch.tensor([[0.5], [-0.25]]), None, 2.0, "softmax")
    assert math.isclose(g_h.item(), 2 * math.exp(2) / (math.exp(2) + math.exp(-1)), rel_tol=1e-6)
    assert math.isclose(g_h.item() + g_u.item(), 2.0, rel_tol=1e-6)


def test_sinusoidal_position_encoding_values():
    p = sinusoidal_position_encoding(3, 4)
    assert p.shape == (3, 4)
    torch.testing.assert_close(p[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    torch.testing.assert_close(p[2], torch.tensor([math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)]))
    assert sinusoidal_position_encoding(2, 5).shape == (2, 5)  # odd channel count


def test_add_position_encoding_broadcasts_over_batch():
    x = torch.zeros(2, 3, 4, 1, 1)
    p = torch.arange(8.0).view(2, 4, 1, 1)
    y = add_position_encoding(x, p)
    assert torch.equal(y[1, 2, :, 0, 0], torch.tensor([4.0, 5.0, 6.0, 7.0]))
    with pytest.raises(ValueError, match="3 steps but the input has 2"):
        add_position_encoding(x, torch.zeros(3, 4, 1, 1))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.7])
@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_tsrd_mask_rate(p, mode):
    g = torch.Generator().manual_seed(3)
    masks = [tsrd_drop_mask(4, 64, p, mode=mode, generator=g) for _ in range(400)]
    draws = torch.cat([m.flatten() for m in masks]).double()
    n = draws.numel()
    assert masks[0].shape == ((4, 1) if mode == "batch" else (4, 64))
    assert abs(draws.mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)  # five standard errors


def test_tsrd_mask_rejects_bad_arguments():
    for bad in (-0.1, 1.01, 2):
        with pytest.raises(ValueError, match=r"tsrd_p must be in \[0, 1\]"):
            tsrd_drop_mask(4, 2, bad)
    for mode in ("batch", "sample"):  # the paper sweeps p up to 1: every step dropped
        assert tsrd_drop_mask(4, 3, 1.0, mode=mode).all() and not tsrd_drop_mask(4, 3, 0.0, mode=mode).any()
    with pytest.raises(ValueError, match="unknown tsrd_mode"):
        tsrd_drop_mask(4, 2, 0.1, mode="layer")
