"""Neuron modules pinned to hand-computed numbers and to each other."""

import math

import pytest
import torch

from staa_snn.functional import get_surrogate, lif_step, sinusoidal_position_encoding
from staa_snn.neurons import LIF, STAALIF, AdaptiveLIF

SHAPES = [(4, 3, 8), (4, 3, 8, 5, 5)]  # [T, B, F] and [T, B, C, H, W]


def test_lif_hand_computed_spikes():
    # tau = 2: H = 0.5 V + 0.5 X
    x = torch.tensor([1.5, 1.5, 1.5, 0.4, 3.0]).view(5, 1, 1)
    # H: 0.75 | 0.375+0.75=1.125 fire | 0.75 | 0.375+0.2=0.575 | 0.2875+1.5=1.7875 fire
    assert LIF(tau=2.0)(x).flatten().tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


def test_lif_hand_computed_membrane_with_nonzero_reset():
    # tau = 4, V_reset = -0.2: H = V + (X - (V - V_reset)) / 4
    sg = get_surrogate("rectangle")
    m, n = 0.75, 0.25
    v = torch.tensor([-0.2])
    hs, ss = [], []
    for x in (2.0, 4.0, 0.0):
        s, v, h = lif_step(v, torch.tensor([x]), m, n, v_threshold=1.0, v_reset=-0.2, surrogate=sg)
        hs.append(h.item()); ss.append(s.item())
    # H1 = -0.2 + 2/4 = 0.3; H2 = 0.3 + (4 - 0.5)/4 = 1.175 -> fire, V = -0.2; H3 = -0.2
    assert ss == [0.0, 1.0, 0.0]
    assert [round(h, 6) for h in hs] == [0.3, 1.175, -0.2]
    out = LIF(tau=4.0, v_reset=-0.2)(torch.tensor([2.0, 4.0, 0.0]).view(3, 1, 1))
    assert out.flatten().tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("detach_reset, expected", [(False, 0.1), (True, 0.25)])
def test_lif_hand_computed_gradient(detach_reset, expected):
    # H1 = 0.6 (no spike, inside the window), V1 = 0.6, H2 = 0.3 + 0.8 = 1.1 (spike, inside the window)
    # dS2/dx2 = 1 * 0.5; dS2/dx1 = 1 * 0.5 * dV1/dH1 * 0.5, dV1/dH1 = (1 - S1) - H1 * 1 = 0.4 (0 -> 1 if detached)
    x = torch.tensor([1.2, 1.6]).view(2, 1, 1).requires_grad_(True)
    s = LIF(tau=2.0, detach_reset=detach_reset)(x)
    assert s.flatten().tolist() == [0.0, 1.0]
    s[1].sum().backward()
    assert x.grad.flatten().tolist() == pytest.approx([expected, 0.5])


@pytest.mark.parametrize("shape", SHAPES)
def test_staa_at_init_equals_adaptive_and_lif(shape):
    x = torch.randn(shape) * 1.5
    C = shape[2]
    ref = LIF(tau=2.0)(x)
    assert 0.05 < ref.mean() < 0.6  # the input drives a real spike pattern
    assert torch.equal(AdaptiveLIF(C)(x), ref)
    staa = STAALIF(C, T=shape[0], gc=True, pe="learnable", sa=True, tsrd_p=0.5)
    assert torch.equal(staa.eval()(x), ref)
    assert torch.equal(staa.train()(x), ref)  # TSRD-dropped steps are the basic sum, which is the same at init
    staa_s = STAALIF(C, T=shape[0], sa_gate="softmax", tsrd_mode="sample", tsrd_p=0.5)
    assert torch.equal(staa_s.train()(x), ref)


def _random_mn(module):
    with torch.no_grad():
        module.m.uniform_(0.1, 0.9)
        module.n.uniform_(0.2, 1.5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tsrd_p", [0.0, 0.5])
def test_staa_all_off_equals_adaptive(shape, tsrd_p):
    C = shape[2]
    adaptive = AdaptiveLIF(C)
    _random_mn(adaptive)
    staa = STAALIF(C, T=shape[0], gc=False, pe=None, sa=False, tsrd_p=tsrd_p)
    staa.load_state_dict(adaptive.state_dict())
    x1 = (torch.randn(shape) * 1.5).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    a, b = adaptive(x1), staa.train()(x2)
    assert torch.equal(a, b)
    (a * torch.arange(a.numel()).view_as(a)).sum().backward()
    (b * torch.arange(b.numel()).view_as(b)).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(adaptive.m.grad, staa.m.grad)


def test_adaptive_hand_computed_per_channel():
    a = AdaptiveLIF(2)
    with torch.no_grad():
        a.m.copy_(torch.tensor([0.5, 0.9])); a.n.copy_(torch.tensor([1.0, 0.4]))
    x = torch.ones(3, 1, 2)
    # ch0: H = 1 -> fire, 1 -> fire, 1 -> fire; ch1: 0.4, 0.76, 1.084 -> fire
    assert a(x)[:, 0].tolist() == [[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize("position", ["input", "post_gc", "membrane", "both"])
def test_pe_placements_by_identity(position):
    """With GC and SA off, PE at the input adds P to X; at the membrane it adds P to H = M V + N X,
    i.e. P / N to X. Each placement equals an AdaptiveLIF on a shifted input (float64, so the
    rewritten sums cannot round across the threshold)."""
    T, C = 4, 3
    staa = STAALIF(C, T=T, gc=False, sa=False, tsrd_p=0.0, pe_position=position).double()
    _random_mn(staa)
    with torch.no_grad():
        for pe in (staa.pe, staa.pe_membrane):
            if pe is not None:
                pe.p.normal_(0, 0.7)
    adaptive = AdaptiveLIF(C).double()
    adaptive.load_state_dict({"m": staa.m, "n": staa.n})
    x = torch.randn(T, 5, C, 2, 2, dtype=torch.float64) * 1.5
    shift = torch.zeros(T, 1, C, 1, 1, dtype=torch.float64)
    if staa.pe is not None:
        shift = shift + staa.pe.p.view(T, 1, C, 1, 1)
    if staa.pe_membrane is not None:
        shift = shift + staa.pe_membrane.p.view(T, 1, C, 1, 1) / staa.n.view(1, 1, C, 1, 1)
    out = staa(x)
    assert torch.equal(out, adaptive(x + shift))
    assert not torch.equal(out, adaptive(x))  # the encoding did change the spikes


def test_fixed_pe_is_a_buffer_and_full_shape_needs_spatial():
    staa = STAALIF(4, T=3, pe="fixed")
    assert "pe.p" not in dict(staa.named_parameters()) and "pe.p" in staa.state_dict()
    # scaled by pe_scale (default 0.1): a perturbation of the input current, not a shift to the threshold
    torch.testing.assert_close(staa.pe.p, 0.1 * sinusoidal_position_encoding(3, 4))
    assert staa.pe.p.abs().max() == pytest.approx(0.1)
    torch.testing.assert_close(STAALIF(4, T=3, pe="fixed", pe_scale=0.5).pe.p, 0.5 * sinusoidal_position_encoding(3, 4))
    with pytest.raises(ValueError, match="spatial_shape"):
        STAALIF(4, T=3, pe_shape="full")
    full = STAALIF(4, T=3, pe_shape="full", mn_shape="full", spatial_shape=(5, 5))
    assert full.pe.p.shape == (3, 4, 5, 5) and full.m.shape == (4, 5, 5)
    assert full(torch.randn(3, 2, 4, 5, 5)).shape == (3, 2, 4, 5, 5)
    with pytest.raises(ValueError, match=r"spatial shape \(5, 5\) but the input has \(6, 6\)"):
        full(torch.randn(3, 2, 4, 6, 6))


def _randomised_staa(**kw):
    staa = STAALIF(6, T=8, **kw)
    with torch.no_grad():
        for p in staa.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return staa


def test_tsrd_eval_never_drops_and_p0_equals_off():
    x = torch.randn(8, 4, 6, 3, 3) * 2
    staa = _randomised_staa(tsrd_p=0.9).eval()
    no_tsrd = _randomised_staa(tsrd_p=0.0)
    no_tsrd.load_state_dict(staa.state_dict())
    ref = no_tsrd.eval()(x)
    for _ in range(5):
        assert torch.equal(staa(x), ref)
    assert torch.equal(no_tsrd.train()(x), ref)  # p = 0 in training changes nothing
    dropped = staa.train()(x)
    assert not torch.equal(dropped, ref)  # p = 0.9 in training does


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_tsrd_measured_drop_rate(mode):
    """A step was dropped iff its SA gates are exactly 1 (random SA weights never give exactly 1)."""
    p, draws = 0.3, 0
    staa = _randomised_staa(tsrd_p=p, tsrd_mode=mode).train()
    x = torch.randn(8, 4, 6, 2, 2)
    dropped = 0
    for _ in range(250):
        staa(x)
        g = staa.last_sa_gates  # [T, B, 2, C]
        is_one = (g == 1).all(dim=-1).all(dim=-1)  # [T, B]
        if mode == "batch":
            assert (is_one == is_one[:, :1]).all()  # shared by the batch
            is_one = is_one[:, :1]
        dropped += is_one.sum().item()
        draws += is_one.numel()
    assert abs(dropped / draws - p) < 5 * math.sqrt(p * (1 - p) / draws)


@pytest.mark.parametrize("cls", ["lif", "adaptive", "staa"])
def test_every_parameter_gets_a_gradient(cls):
    x = (torch.randn(4, 3, 8, 4, 4) * 1.5).requires_grad_(True)
    if cls == "lif":
        neuron = LIF()
    elif cls == "adaptive":
        neuron = AdaptiveLIF(8)
    else:
        neuron = STAALIF(8, T=4, tsrd_p=0.0)
    out = neuron(x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in neuron.named_parameters():
        assert p.grad is not None, name
    if cls == "staa":  # away from the zero init every parameter's gradient is non-zero
        neuron = _randomised_staa(tsrd_p=0.0, pe_position="both")
        x = torch.randn(8, 3, 6, 4, 4) * 1.5
        out = neuron(x)
        (out * torch.randn_like(out)).sum().backward()
        for name, p in neuron.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_recorded_statistics():
    staa = STAALIF(8, T=4)
    x = torch.randn(4, 2, 8, 3, 3) * 2
    s = staa.eval()(x)
    assert staa.last_firing_rate.item() == pytest.approx(s.mean().item())
    assert torch.equal(staa.last_sa_gates, torch.ones(4, 2, 2, 8))
    no_sa = STAALIF(8, T=4, sa=False)
    no_sa(x)
    assert no_sa.last_sa_gates is None and no_sa.last_firing_rate is not None
    staa.reset()
    assert staa.last_firing_rate is None and staa.last_sa_gates is None


def test_state_does_not_carry_over_between_forwards():
    """Each forward starts at rest. Tau 2, V_th 1, a constant 1.5: H = 0.75, 1.125 (fires, V -> 0),
    0.75, so the first call ends at V = 0.75; a second call that carried it on would fire at once
    (H = 0.75 + (1.5 - 0.75) / 2 = 1.125) instead of at step 2."""
    lif = LIF()
    x = torch.full((3, 2, 1), 1.5)
    expected = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, 2, 1)
    assert torch.equal(lif(x), expected)
    assert torch.equal(lif(x), expected)


def test_bad_inputs_and_arguments():
    staa = STAALIF(8, T=4)
    with pytest.raises(ValueError, match=r"built for T=4 steps but the input has 3 steps"):
        staa(torch.randn(3, 2, 8, 4, 4))
    for neuron in (LIF(), AdaptiveLIF(8), staa):
        for bad in (torch.randn(2, 8, 4, 4), torch.randn(4, 8), torch.randn(4, 2, 8, 4, 4, 1)):
            with pytest.raises(ValueError, match=r"time-first input \[T, B, F\] or \[T, B, C, H, W\].*rank"):
                neuron(bad)
    with pytest.raises(ValueError, match="built for 8 channels but the input has 5"):
        AdaptiveLIF(8)(torch.randn(4, 2, 5))
    for p in (-0.1, 1.01, 1.5, True):
        with pytest.raises(ValueError, match=r"tsrd_p must be in \[0, 1\]"):
            STAALIF(8, T=4, tsrd_p=p)
    for tau in (0.0, -2.0, 0.5, float("nan")):
        with pytest.raises(ValueError, match="tau must be"):
            LIF(tau=tau)
    for vth in (0.0, -1.0):
        with pytest.raises(ValueError, match="v_threshold must be positive"):
            LIF(v_threshold=vth)
        with pytest.raises(ValueError, match="v_threshold must be positive"):
            STAALIF(8, T=4, v_threshold=vth)
    with pytest.raises(ValueError, match="T must be a positive int"):
        STAALIF(8, T=0)
    with pytest.raises(ValueError, match="unknown pe_position 'output'"):
        STAALIF(8, T=4, pe_position="output")
    with pytest.raises(ValueError, match="unknown surrogate"):
        LIF(surrogate="gauss")
    with pytest.raises(TypeError, match="floating-point"):
        LIF()(torch.ones(2, 2, 2, dtype=torch.long))
