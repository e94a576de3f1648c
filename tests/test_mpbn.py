"""MPBN (method.md, section 11): the preset against an independent reference, the fold, the nets."""

import math

import pytest
import torch
from torch import nn

from staa_snn.functional import Tanh, fold_thresholds, get_surrogate
from staa_snn.models import create_model, fold_mpbn
from staa_snn.neurons import LIF, STAALIF, AdaptiveLIF, MultiStepNeuron

D64 = dict(dtype=torch.float64)


def mpbn_reference(x, weight, bias, running_mean, running_var, *, training, momentum=0.1, eps=1e-5):
    """MPBN's neuron written out from its public code, independently of the package:
    ``u = 0.25 u + x``; BN of ``u`` over (batch, space) at each step; spike where the normalised
    potential passes 0.5, with the straight-through tanh surrogate; ``u = u (1 - s)``.
    (MPBN compares with ``>``, we with ``>=``: the two differ only on exact ties.)"""
    T, C = x.shape[0], x.shape[2]
    dims = [0] + list(range(2, x.dim() - 1))
    shape = (1, C) + (1,) * (x.dim() - 3)
    mean, var = running_mean.clone(), running_var.clone()
    u, spikes = torch.zeros_like(x[0]), []
    for t in range(T):
        u = 0.25 * u + x[t]
        if training:
            mu, sigma2 = u.mean(dims), u.var(dims, unbiased=False)
            n = u.numel() / C
            mean = (1 - momentum) * mean + momentum * mu.detach()
            var = (1 - momentum) * var + momentum * sigma2.detach() * n / (n - 1)
        else:
            mu, sigma2 = mean, var
        un = (u - mu.view(shape)) / torch.sqrt(sigma2.view(shape) + eps) * weight.view(shape) + bias.view(shape)
        bp = (torch.tanh(3.0 * (un.clamp(0, 1) - 0.5)) + math.tanh(1.5)) / (2 * math.tanh(1.5))
        s = ((un >= 0.5).to(un.dtype) - bp).detach() + bp
        u = u * (1 - s)
        spikes.append(s)
    return torch.stack(spikes), mean, var


def _bn_params(C, dtype):
    g = torch.Generator().manual_seed(5)
    weight = torch.empty(C, dtype=dtype).uniform_(0.5, 1.5, generator=g)
    weight[1::3] *= -1  # channels with a negative BN weight fire on a low potential
    bias = torch.empty(C, dtype=dtype).uniform_(-0.3, 0.3, generator=g)
    return weight, bias


def _set_bn(neuron, weight, bias):
    with torch.no_grad():
        neuron.bn_mp.weight.copy_(weight)
        neuron.bn_mp.bias.copy_(bias)


NEURONS = {
    "lif": lambda C, T, backend: LIF(channels=C, neuron_preset="mpbn", backend=backend),
    "adaptive": lambda C, T, backend: AdaptiveLIF(C, neuron_preset="mpbn", backend=backend),
    "staa": lambda C, T, backend: STAALIF(C, T, neuron_preset="mpbn", tsrd_p=0, backend=backend),
}


@pytest.mark.parametrize("shape", [(4, 6, 5, 3, 3), (5, 16, 5)], ids=["conv", "flat"])
@pytest.mark.parametrize("kind", sorted(NEURONS))
@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_mpbn_preset_equals_an_independent_mpbn_reference(shape, kind, backend):
    T, C = shape[0], shape[2]
    neuron = NEURONS[kind](C, T, backend).double()
    weight, bias = _bn_params(C, torch.float64)
    _set_bn(neuron, weight, bias)
    x = (torch.randn(shape, **D64) * 1.2 + 0.2).requires_grad_(True)
    xr = x.detach().clone().requires_grad_(True)
    w, b = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)

    out = neuron.train()(x)  # training: per-step batch statistics
    ref, mean, var = mpbn_reference(xr, w, b, torch.zeros(C, **D64), torch.ones(C, **D64), training=True)
    assert torch.equal(out, ref) and 0.1 < ref.mean() < 0.7
    assert (ref[:, :, 1] - ref[:, :, 0]).abs().sum() > 0  # negative and positive weights fire differently
    torch.testing.assert_close(neuron.bn_mp.running_mean, mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(neuron.bn_mp.running_var, var, rtol=1e-12, atol=1e-12)
    assert int(neuron.bn_mp.num_batches_tracked) == T  # one update per step

    probe = torch.randn(shape, **D64)
    grads = torch.autograd.grad((out * probe).sum(), [x, neuron.bn_mp.weight, neuron.bn_mp.bias])
    ref_grads = torch.autograd.grad((ref * probe).sum(), [xr, w, b])
    for a, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-9)

    x_eval = torch.randn(shape, **D64) * 1.2 + 0.2  # eval: the running statistics
    ref_eval, _, _ = mpbn_reference(x_eval, weight, bias, mean, var, training=False)
    assert torch.equal(neuron.eval()(x_eval), ref_eval)


def test_mpbn_preset_constants():
    lif, staa = LIF(channels=4, neuron_preset="mpbn"), STAALIF(4, 3, neuron_preset="mpbn")
    assert (lif.decay, lif.gain) == (0.25, 1.0) and lif.v_threshold == 0.5 and lif.surrogate == Tanh(3.0)
    assert torch.equal(staa.m, torch.full((4,), 0.25)) and torch.equal(staa.n, torch.ones(4))
    assert isinstance(staa.bn_mp, nn.BatchNorm1d) and staa.bn_mp.momentum == 0.1 and staa.bn_mp.eps == 1e-5
    assert LIF().bn_mp is None and (LIF().decay, LIF().gain, LIF().v_threshold) == (0.5, 0.5, 1.0)
    # explicit arguments win over the preset: MPBN's constants without BN_mp (FSTA-SNN's reading)
    plain = LIF(neuron_preset="mpbn", mpbn=False)
    assert plain.bn_mp is None and plain.decay == 0.25 and plain.v_threshold == 0.5
    assert LIF(tau=4.0, channels=2, neuron_preset="mpbn").decay == 0.75
    with pytest.raises(ValueError, match=r"mpbn=True\) needs channels="):
        LIF(mpbn=True)
    with pytest.raises(ValueError, match="unknown neuron_preset 'paper'"):
        LIF(neuron_preset="paper")
    with pytest.raises(ValueError, match="built for 4 channels but the input has 3"):
        lif(torch.randn(2, 2, 3))


def test_tanh_surrogate_is_mpbns():
    """The tanh surrogate at x = Hn - 0.5 is MPBN's 3 (1 - tanh^2(3 (u - 0.5))) / (2 tanh 1.5) on 0 < u < 1."""
    u = torch.linspace(-0.4, 1.4, 181, **D64)
    expected = torch.where((u > 0) & (u < 1), 3 * (1 - torch.tanh(3 * (u - 0.5)) ** 2) / (2 * math.tanh(1.5)), 0.0)
    torch.testing.assert_close(get_surrogate("tanh").grad(u - 0.5), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_staa_mpbn_net_with_every_block_off_is_the_mpbn_net(backend):
    kw = dict(num_classes=5, T=2, in_channels=1, neuron_preset="mpbn", backend=backend)
    torch.manual_seed(0)
    mpbn = create_model("vgg_small", neuron="lif", **kw).double()
    torch.manual_seed(0)
    staa = create_model("vgg_small", neuron="staa", gc=False, pe=None, sa=False, tsrd_p=0, **kw).double()
    missing, unexpected = staa.load_state_dict(mpbn.state_dict(), strict=False)
    assert not unexpected and all(k.endswith((".m", ".n")) for k in missing)
    x = torch.rand(6, 1, 8, 8, **D64) * 2
    a, b = mpbn(x), staa(x)
    assert torch.equal(a, b)
    a.square().sum().backward(), b.square().sum().backward()
    staa_grads = dict(staa.named_parameters())
    for name, p in mpbn.named_parameters():
        torch.testing.assert_close(p.grad, staa_grads[name].grad, rtol=1e-10, atol=1e-12)
    mpbn.eval(), staa.eval()
    assert torch.equal(mpbn(x), staa(x))


def test_fold_thresholds_by_hand():
    # channel 0: g = 2, b = 0.1, mu = 1, var + eps = 4: BN(H) >= 0.5  <=>  H >= (0.5 - 0.1) * 2 / 2 + 1 = 1.4
    # channel 1: g = -1: BN(H) >= 0.5  <=>  H <= (0.5 - 0.1) * 2 / -1 + 1 = 0.2
    # channels 2, 3: g = 0: BN(H) = b, always (b = 0.6 >= 0.5) or never (b = 0.4) firing
    eps = 1e-5
    th, sign = fold_thresholds(0.5, torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.full((4,), 4.0 - eps),
                               torch.tensor([2.0, -1.0, 0.0, 0.0]), torch.tensor([0.1, 0.1, 0.6, 0.4]), eps)
    torch.testing.assert_close(th[:2], torch.tensor([1.4, 0.2]))
    assert th[2] == -math.inf and th[3] == math.inf and sign.tolist() == [1.0, -1.0, 1.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["lif", "staa"])
def test_fold_mpbn_gives_identical_eval_spikes(kind, dtype):
    torch.manual_seed(1)
    net = create_model("vgg_small", num_classes=4, T=3, in_channels=1, neuron=kind, neuron_preset="mpbn").to(dtype)
    x = torch.rand(16, 1, 12, 12, dtype=dtype) * 2
    with torch.no_grad():
        net.train()
        for _ in range(3):  # move the running statistics away from (0, 1)
            net(x + 0.3 * torch.randn_like(x))
        neurons = [m for m in net.modules() if isinstance(m, MultiStepNeuron)]
        for i, m in enumerate(neurons):
            m.bn_mp.weight.uniform_(0.5, 1.5).mul_(torch.tensor([1.0, -1.0], dtype=dtype).repeat(m.channels // 2))
            m.bn_mp.bias.uniform_(-0.2, 0.2)
            m.bn_mp.weight[2] = 0.0  # constant channels: always firing, never firing
            m.bn_mp.bias[2] = 0.7 if i % 2 else 0.2
    spikes = {}

    def record(store):
        return [m.register_forward_hook(lambda mod, args, out, store=store: store.append(out.clone()))
                for m in neurons]

    before: list = []
    hooks = record(before)
    with torch.no_grad():
        out = net.eval()(x)
    for h in hooks:
        h.remove()
    assert fold_mpbn(net) is net and not net.training
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for n in neurons for m in n.modules())
    assert all(n.bn_mp is None and n.fold_threshold is not None for n in neurons)
    after: list = []
    hooks = record(after)
    with torch.no_grad():
        folded = net(x)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert torch.equal(folded, out)
    assert any(0.05 < s.mean() < 0.9 for s in before)
    assert all(s[:, :, 2].mean() in (0.0, 1.0) for s in before)  # the constant channels
    with pytest.raises(RuntimeError, match="eval-mode spikes only"):
        net.train()(x)
    with pytest.raises(ValueError, match="no BN_mp to fold"):
        neurons[0].fold_membrane_bn()


def test_mpbn_nets_have_mpbns_parameter_counts():
    for name, expected in (("resnet20", 11_302_180), ("resnet19", 12_624_356)):
        net = create_model(name, num_classes=100, T=4, neuron="lif", neuron_preset="mpbn")
        assert sum(p.numel() for p in net.parameters()) == expected
    # mpbn=True alone adds BN_mp to the spec's neuron
    net = create_model("resnet20", num_classes=100, T=4, neuron="lif", mpbn=True)
    assert sum(p.numel() for p in net.parameters()) == 11_302_180
    assert net.features[2].neuron.v_threshold == 1.0


def test_spikingjelly_mpbn_node_agrees_on_one_step_and_differs_after():
    """SpikingJelly's MPBNLIFNode carries the normalised potential into the next step; MPBN's code
    (and ours) carry the raw one. On a single step, where nothing is carried, the two agree."""
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron",
                                    reason="SpikingJelly is an optional dependency ([dev] installs it)")
    sj_functional = pytest.importorskip("spikingjelly.activation_based.functional")
    C = 4
    weight, bias = _bn_params(C, torch.float64)
    ours = LIF(channels=C, neuron_preset="mpbn").double()
    theirs = sj_neuron.MPBNLIFNode(tau=4 / 3, decay_input=False, v_threshold=0.5, step_mode="m",
                                   out_channels=C).double()
    _set_bn(ours, weight, bias)
    with torch.no_grad():
        theirs.vbn.weight.copy_(weight), theirs.vbn.bias.copy_(bias)
    one_step = torch.randn(1, 16, C, 3, 3, **D64) + 0.3
    assert torch.equal(ours(one_step), theirs(one_step))
    torch.testing.assert_close(ours.bn_mp.running_mean, theirs.vbn.running_mean)
    torch.testing.assert_close(ours.bn_mp.running_var, theirs.vbn.running_var)
    sj_functional.reset_net(theirs)
    steps = torch.randn(4, 16, C, 3, 3, **D64) + 0.3
    a, b = ours(steps), theirs(steps)
    assert torch.equal(a[0], b[0])  # the first step agrees
    assert not torch.equal(a, b)    # then the carried potentials differ


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_rebuilds_hn_from_the_saved_statistics(dtype):
    """The fused backward rebuilds ``Hn`` pointwise from the forward's per-step ``(mean, rstd)``
    (``renormalized``): within a few ulps of what ATen normalised with, in training (batch
    statistics) and in eval (running ones), from an input whose mean and scale are far from 0
    and 1, with an affine map of both signs."""
    from staa_snn.kernels.membrane_bn import MembraneNorm, normalized, renormalized

    torch.manual_seed(3)
    bn = nn.BatchNorm1d(6).to(dtype)
    with torch.no_grad():
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    h = torch.randn(16, 6, 50, dtype=dtype) * 3 + 2
    for training in (True, False):
        bn.train(training)
        norm = MembraneNorm.of(bn)
        hn, mean, rstd = normalized(h, norm)
        rebuilt = renormalized(h, norm, mean, rstd)
        ulp = torch.finfo(dtype).eps * hn.abs().clamp_min(1)
        assert ((rebuilt - hn).abs() <= 4 * ulp).all()
        assert (rebuilt - h).abs().max() > 0.5  # it normalises: not the identity
