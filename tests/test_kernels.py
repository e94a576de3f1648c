"""Fast paths against the functional reference, forward and backward."""

import gc

import pytest
import torch

from staa_snn.functional import get_surrogate, lif_multistep
from staa_snn.functional import gc_context
from staa_snn.kernels import binary_saved_tensors, gc_context_fused, lif_multistep_fused, mark_binary
from staa_snn.models import create_model
from staa_snn.neurons import STAALIF

D64 = dict(dtype=torch.float64)


def _params(kind, shape):
    if kind == "float":
        return 0.5, 0.5
    C = shape[2]
    pshape = {"scalar": (), "channel": (C,) + (1,) * (len(shape) - 3), "full": shape[2:]}[kind]
    m = torch.empty(pshape, **D64).uniform_(0.2, 0.9).requires_grad_(True)
    n = torch.empty(pshape, **D64).uniform_(0.3, 1.2).requires_grad_(True)
    return m, n


@pytest.mark.parametrize("shape", [(5, 6, 8), (4, 2, 3, 4, 4)])
@pytest.mark.parametrize("kind", ["float", "scalar", "channel", "full"])
@pytest.mark.parametrize("surrogate", ["rectangle", "sigmoid", "atan"])
@pytest.mark.parametrize("v_reset, detach_reset", [(0.0, False), (0.0, True), (-0.3, False)])
def test_fused_lif_matches_reference(shape, kind, surrogate, v_reset, detach_reset):
    _check_fused_against_reference(shape, kind, surrogate, v_reset, detach_reset, compiled=False)


def _check_fused_against_reference(shape, kind, surrogate, v_reset, detach_reset, compiled):
    x = (torch.randn(shape, **D64) * 1.5 + 0.5).requires_grad_(True)
    m, n = _params(kind, shape)
    kw = dict(v_threshold=1.0, v_reset=v_reset, surrogate=get_surrogate(surrogate), detach_reset=detach_reset)
    ref, _ = lif_multistep(x, m, n, **kw)
    out = lif_multistep_fused(x, m, n, compiled=compiled, **kw)
    assert torch.equal(out, ref)
    assert 0.02 < ref.mean() < 0.8  # a real spike pattern
    w = torch.randn(shape, **D64)
    inputs = [x] + [p for p in (m, n) if isinstance(p, torch.Tensor)]
    g_ref = torch.autograd.grad((ref * w).sum(), inputs)
    g_out = torch.autograd.grad((out * w).sum(), inputs)
    for a, b in zip(g_out, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shape, kind, surrogate, v_reset, detach_reset", [
    ((4, 2, 3, 4, 4), "float", "rectangle", 0.0, False),   # the LIF
    ((5, 6, 8), "channel", "sigmoid", -0.3, True),          # an adaptive LIF, the other branches
])
def test_compiled_lif_matches_reference(shape, kind, surrogate, v_reset, detach_reset):
    """backend="compiled": the same loops through torch.compile (a few compiles, so two cases)."""
    _check_fused_against_reference(shape, kind, surrogate, v_reset, detach_reset, compiled=True)


def test_fused_lif_saves_one_tensor():
    x = torch.randn(4, 8, 16, 6, 6, requires_grad=True)
    m = torch.full((16, 1, 1), 0.5, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        lif_multistep_fused(x, m, 0.5, v_threshold=1.0, v_reset=0.0, surrogate=get_surrogate("rectangle"))
    assert sorted(saved) == [16, x.numel()]  # H and M; nothing else


@pytest.mark.parametrize("tsrd_mode", ["batch", "sample"])
@pytest.mark.parametrize("shape_kw", [{}, dict(pe_shape="full", spatial_shape=(4, 4))], ids=["shifted", "full-pe"])
def test_staa_without_sa_fast_path_matches_reference(tsrd_mode, shape_kw):
    kw = dict(sa=False, tsrd_p=0.4, tsrd_mode=tsrd_mode, **shape_kw)
    fast, ref = STAALIF(6, T=5, **kw).double(), STAALIF(6, T=5, backend="reference", **kw).double()
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(5, 3, 6, 4, 4, **D64) * 2
    for train in (False, True):
        fast.train(train), ref.train(train)
        torch.manual_seed(7)
        a = fast(x)
        torch.manual_seed(7)
        b = ref(x)
        assert torch.equal(a, b)
        ga = torch.autograd.grad(a.sum(), list(fast.parameters()))
        gb = torch.autograd.grad(b.sum(), list(ref.parameters()))
        for u, v in zip(ga, gb, strict=True):
            torch.testing.assert_close(u, v)


@pytest.mark.parametrize("kw", [
    dict(tsrd_p=0.4),  # the defaults: SA on, PE at the input, TSRD per batch
    dict(tsrd_p=0.4, tsrd_mode="sample", pe_position="both", v_reset=-0.2, surrogate="sigmoid", detach_reset=True),
], ids=["defaults", "sample-membrane-pe-vreset"])
def test_compiled_staa_matches_reference(kw):
    fast, ref = STAALIF(6, T=5, backend="compiled", **kw).double(), STAALIF(6, T=5, backend="reference", **kw).double()
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    ref.load_state_dict(fast.state_dict())
    for train in (False, True):
        x = (torch.randn(5, 3, 6, 4, 4, **D64) * 2).requires_grad_(True)
        fast.train(train), ref.train(train)
        torch.manual_seed(7)
        a = fast(x)
        torch.manual_seed(7)
        b = ref(x)
        assert torch.equal(a, b) and 0.05 < b.mean() < 0.8
        torch.testing.assert_close(fast.last_sa_gates, ref.last_sa_gates, rtol=1e-12, atol=1e-12)  # fused rounding
        ga = torch.autograd.grad((a * x.detach()).sum(), [x, *fast.parameters()])
        gb = torch.autograd.grad((b * x.detach()).sum(), [x, *ref.parameters()])
        for u, v in zip(ga, gb, strict=True):
            torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("neuron", ["lif", "staa"])
def test_binary_storage_is_exact(neuron):
    """A net's output and gradients are bit-identical with and without bool storage of spikes."""
    model = create_model("vgg13", num_classes=5, T=2, neuron=neuron, **({"tsrd_p": 0.0} if neuron == "staa" else {}))
    x = torch.randn(2, 3, 32, 32) * 2

    def run(compress: bool):
        model.zero_grad()
        if compress:
            out = model(x)
        else:  # the same forward, outside the storage context
            out = model.classifier(torch.flatten(model.features(model.encode(x)), 1)).unflatten(0, (2, -1)).mean(0)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    out_plain, g_plain = run(False)
    out_packed, g_packed = run(True)
    assert torch.equal(out_plain, out_packed)
    assert all(torch.equal(a, b) for a, b in zip(g_plain, g_packed, strict=True))


def test_binary_storage_packs_marked_tensors_only_while_alive():
    from staa_snn.kernels.spike_storage import _marks, _pack, _unpack

    assert _pack(torch.ones(3)) is not None and _marks.get() is None
    with binary_saved_tensors():
        s = mark_binary((torch.rand(2, 500) > 0.5).float())
        packed = _pack(s.flatten())  # a view of a marked tensor is packed too
        assert packed[1].dtype == torch.bool and packed[1].shape == (1000,)
        assert torch.equal(_unpack(packed), s.flatten())
        assert _pack(s.flatten())[1] is packed[1]  # saved twice, stored once
        other = torch.rand(1000)
        assert _pack(other) is other  # unmarked: untouched
        ptr = s.untyped_storage().data_ptr()
        del s, packed
        gc.collect()
        assert _marks.get()[ptr].ref() is None  # the mark died with the tensor: a reused address is never packed
        w = torch.randn(1000, requires_grad=True)
        spikes = mark_binary((torch.rand(1000) > 0.5).float())
        y = (spikes * w).sum()
    y.backward()
    assert torch.equal(w.grad, spikes)
    assert _marks.get() is None  # the context cleaned up


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (6, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_gc_context_matches_reference(shape, bias):
    torch.manual_seed(0)
    x = torch.randn(shape, **D64, requires_grad=True)
    w = torch.randn(1, shape[1], **D64, requires_grad=True)
    b = torch.randn(1, **D64, requires_grad=True) if bias else None
    inputs = [x, w] + ([b] if bias else [])
    a, r = gc_context_fused(x, w, b), gc_context(x, w, b)
    torch.testing.assert_close(a, r)
    g = torch.randn_like(a)
    for u, v in zip(torch.autograd.grad((a * g).sum(), inputs), torch.autograd.grad((r * g).sum(), inputs), strict=True):
        torch.testing.assert_close(u, v)
    assert torch.autograd.gradcheck(lambda *i: gc_context_fused(i[0], i[1], i[2] if bias else None), inputs)


def _perturbed_pair(kw, fast_backend="fused", **fast_kw):
    """A fast-backend STAALIF and a reference one with the same, non-trivial parameters."""
    fast = STAALIF(6, T=5, backend=fast_backend, **kw, **fast_kw).double()
    ref = STAALIF(6, T=5, backend="reference", **kw).double()
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


@pytest.mark.parametrize("kw", [
    dict(tsrd_p=0.4),
    dict(tsrd_p=0.4, tsrd_mode="sample", sa_gate="softmax", v_reset=0.3, surrogate="triangle"),
    dict(tsrd_p=0.0, pe_position="post_gc", v_reset=-0.2, surrogate="sigmoid", detach_reset=True),
    dict(tsrd_p=0.4, pe="fixed", mn_shape="scalar", recompute=False),
    dict(tsrd_p=0.4, gc=False, tsrd_mode="sample", surrogate="atan"),
    dict(tsrd_p=0.4, pe=None, recompute=False),
    dict(tsrd_p=0.0, pe=None, gc=False),
], ids=["defaults", "sample-softmax-vreset", "post_gc-sigmoid-detach", "fixed-pe-scalar-keep", "no-gc-sample",
        "no-pe-keep", "sa-only"])
@pytest.mark.parametrize("rank", [5, 3])
def test_fused_staa_matches_reference(kw, rank):
    """The fused STAA kernel (X^ = X + b, hand-written backward) against the functional loop."""
    torch.manual_seed(0)
    fast, ref = _perturbed_pair(kw)
    assert fast.input_is_shifted
    shape = (5, 3, 6, 4, 4) if rank == 5 else (5, 3, 6)
    for train in (False, True):
        x = (torch.randn(shape, **D64) * 2).requires_grad_(True)
        fast.train(train), ref.train(train)
        torch.manual_seed(7)
        a = fast(x)
        torch.manual_seed(7)
        b = ref(x)
        assert a.grad_fn.name() == "ViewBackward0" and a.grad_fn.next_functions[0][0].name() == "_FusedSTAABackward"
        assert torch.equal(a, b) and 0.03 < b.mean() < 0.8
        torch.testing.assert_close(fast.last_sa_gates, ref.last_sa_gates)
        w = torch.randn_like(a)
        ga = torch.autograd.grad((a * w).sum(), [x, *fast.parameters()])
        gb = torch.autograd.grad((b * w).sum(), [x, *ref.parameters()])
        for (name, _), u, v in zip([("x", x), *fast.named_parameters()], ga, gb, strict=True):
            torch.testing.assert_close(u, v, msg=lambda m, name=name: f"{name}: {m}")


def test_staa_fused_path_only_where_it_applies():
    """Full-shaped PE or M/N, GC "scale" and PE at the membrane take the general path, and still match."""
    for kw in (dict(pe_shape="full", spatial_shape=(4, 4)), dict(mn_shape="full", spatial_shape=(4, 4)),
               dict(gc_fusion="scale"), dict(pe_position="both")):
        fast, ref = _perturbed_pair(dict(tsrd_p=0.0, **kw))
        x = torch.randn(5, 3, 6, 4, 4, **D64) * 2
        out = fast(x)
        assert "_FusedSTAA" not in str(out.grad_fn.next_functions), kw
        assert torch.equal(out, ref(x)), kw


def test_staa_recompute_matches_and_saves_less():
    kw = dict(tsrd_p=0.0)
    torch.manual_seed(0)
    plain, _ = _perturbed_pair(kw, recompute=False)
    recomputed = STAALIF(6, T=5, **kw).double()
    recomputed.load_state_dict(plain.state_dict())
    x = (torch.randn(5, 3, 6, 5, 5, **D64) * 2).requires_grad_(True)

    def run(neuron):
        saved = {}
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.setdefault(t.untyped_storage().data_ptr(), t.numel()) and t, lambda t: t
        ):
            out = neuron(x)
        grads = torch.autograd.grad((out * torch.arange(out.numel(), **D64).view_as(out)).sum(), [x, *neuron.parameters()])
        return out, grads, sorted(n for n in saved.values() if n >= x.numel())

    a, ga, big_plain = run(plain)
    b, gb, big_recomputed = run(recomputed)
    assert torch.equal(a, b)
    for u, v in zip(ga, gb, strict=True):
        torch.testing.assert_close(u, v)
    assert big_plain == [x.numel(), x.numel()]  # the input and H
    assert big_recomputed == [x.numel()]        # the input only (shared with GC)


@pytest.mark.parametrize("neuron", ["lif", "adaptive", "staa"])
def test_fused_kernels_under_bf16_autocast_follow_the_reference(neuron):
    """Autocast hands bf16 activations to float32 parameters: the kernels compute in the promoted
    dtype, as the reference's element-wise ops do, and backward sees no mixed dtypes."""
    options = {"tsrd_p": 0.0} if neuron == "staa" else {}
    torch.manual_seed(0)
    fast = create_model("vgg_small", num_classes=10, T=2, neuron=neuron, in_channels=1, **options)
    ref = create_model("vgg_small", num_classes=10, T=2, neuron=neuron, in_channels=1, backend="reference", **options)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(4, 1, 16, 16)
    outs, grads = [], []
    for model in (fast, ref):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        out.float().square().sum().backward()
        outs.append(out)
        grads.append(torch.cat([p.grad.float().flatten() for p in model.parameters()]))
    assert outs[0].dtype == torch.bfloat16 and torch.equal(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=0.02, atol=1e-3)


def test_compiling_a_kernel_raises_the_recompile_limit():
    """A net's layer shapes and loop variants need more graphs per kernel than torch's default 8;
    past the limit torch would run the kernel eagerly, silently."""
    from staa_snn.kernels._compile import RECOMPILE_LIMIT, compiled

    with torch._dynamo.config.patch(recompile_limit=8):
        compiled(lambda x: x + 1)  # a new function: compiled() runs (it caches per function)
        assert torch._dynamo.config.recompile_limit == RECOMPILE_LIMIT
