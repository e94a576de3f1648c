"""Fast paths against the functional reference, forward and backward."""

import gc

import pytest
import torch

from staa_snn.functional import get_surrogate, lif_multistep
from staa_snn.functional import gc_context
from staa_snn.kernels import binary_saved_tensors, gc_context_fused, lif_multistep_fused, mark_binary
from staa_snn.kernels._compile import compile_unsupported

needs_compile = pytest.mark.skipif(compile_unsupported() is not None, reason=str(compile_unsupported()))
from staa_snn.models import create_model
from staa_snn.neurons import LIF, STAALIF, AdaptiveLIF

D64 = dict(dtype=torch.float64)

# Every test here runs where ``pytest --device`` says (cpu by default; cuda in benchmarks/gpu_check.py).
pytestmark = pytest.mark.usefixtures("on_device")


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
@pytest.mark.parametrize("surrogate", ["rectangle", "sigmoid", "atan", "triangle", "tanh"])
@pytest.mark.parametrize("v_reset, detach_reset", [(0.0, False), (0.0, True), (-0.3, False)])
def test_fused_lif_matches_reference(shape, kind, surrogate, v_reset, detach_reset):
    _check_fused_against_reference(shape, kind, surrogate, v_reset, detach_reset, compiled=False)


def _check_fused_against_reference(shape, kind, surrogate, v_reset, detach_reset, compiled):
    x = (torch.randn(shape, **D64) * 1.5 + 0.5).requires_grad_(True)
    m, n = _params(kind, shape)
    kw = dict(v_threshold=1.0, v_reset=v_reset, surrogate=get_surrogate(surrogate), detach_reset=detach_reset)
    ref, _ = lif_multistep(x, m, n, **kw)
    out, rate = lif_multistep_fused(x, m, n, compiled=compiled, **kw)
    assert torch.equal(out, ref) and torch.allclose(rate, ref.mean())
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
@pytest.mark.slow
@needs_compile
def test_compiled_lif_matches_reference(shape, kind, surrogate, v_reset, detach_reset):
    """backend="compiled": the same loops through torch.compile (a few compiles, so two cases)."""
    _check_fused_against_reference(shape, kind, surrogate, v_reset, detach_reset, compiled=True)


@pytest.mark.parametrize("shape", [(7, 6, 8), (5, 2, 3, 4, 4)])
@pytest.mark.parametrize("kind", ["float", "channel", "full"])
@pytest.mark.parametrize("v_reset, detach_reset", [(0.0, False), (-0.3, True)])
def test_chunked_lif_loops_match_reference(monkeypatch, shape, kind, v_reset, detach_reset):
    """The compiled backend runs long sequences as chunks of steps, each starting from the state the
    previous one left (the first from rest given as zeros, its history as V_reset). The chunk driver,
    run eagerly with chunks of 2 (and a remainder), gives the reference's spikes and gradients."""
    from staa_snn.kernels import lif_fused
    monkeypatch.setattr(lif_fused, "EAGER_CHUNK", 2)
    assert lif_fused._chunks(shape[0], compiled=False)[-1] == (shape[0] - 1, shape[0])  # 2, 2, ..., 1
    _check_fused_against_reference(shape, kind, "sigmoid", v_reset, detach_reset, compiled=False)


@pytest.mark.parametrize("kind", ["lif", "adaptive"])
def test_chunked_lif_with_mpbn_matches_reference(monkeypatch, kind):
    from staa_snn.kernels import lif_fused
    monkeypatch.setattr(lif_fused, "EAGER_CHUNK", 3)
    test_fused_lif_with_mpbn_matches_reference((7, 6, 5, 3, 3), kind, dict(neuron_preset="mpbn"))


@pytest.mark.slow
@needs_compile
def test_compiled_lif_chunks_match_reference(monkeypatch):
    """Compiled, with chunks of 3 steps over T = 7: two compiled chunks and one eager step, the
    reference's numbers."""
    from staa_snn.kernels import lif_fused
    monkeypatch.setattr(lif_fused, "COMPILE_CHUNK", 3)
    _check_fused_against_reference((7, 6, 8), "channel", "sigmoid", -0.3, False, compiled=True)


def test_fused_lif_saves_one_tensor():
    x = torch.randn(4, 8, 16, 6, 6, requires_grad=True)
    m = torch.full((16, 1, 1), 0.5, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        lif_multistep_fused(x, m, 0.5, v_threshold=1.0, v_reset=0.0, surrogate=get_surrogate("rectangle"))
    assert sorted(saved) == [16, x.numel()]  # H and M; nothing else
    saved.clear()
    n = torch.full((16, 1, 1), 0.5, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        lif_multistep_fused(x, m, n, v_threshold=1.0, v_reset=0.0, surrogate=get_surrogate("rectangle"))
    assert sorted(saved) == [16, 16, x.numel()]  # X (for dL/dN; H is rebuilt from it), M and N


def test_fused_adaptive_lif_gradient_of_a_silent_channel():
    """dL/dN is the sum of dL/dH X, never (H - M V) / N: a channel with N = 0 gets a finite gradient."""
    x = (torch.randn(4, 3, 2, 5, **D64) + 1.0).requires_grad_(True)
    m = torch.tensor([0.5, 0.3], **D64).view(2, 1).requires_grad_(True)
    n = torch.tensor([0.8, 0.0], **D64).view(2, 1).requires_grad_(True)
    kw = dict(v_threshold=1.0, v_reset=0.0, surrogate=get_surrogate("sigmoid"))
    w = torch.randn(4, 3, 2, 5, **D64)
    g_fast = torch.autograd.grad((lif_multistep_fused(x, m, n, **kw).spikes * w).sum(), [x, m, n])
    g_ref = torch.autograd.grad((lif_multistep(x, m, n, **kw)[0] * w).sum(), [x, m, n])
    assert torch.isfinite(g_fast[2]).all() and g_fast[2][1] != 0
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tsrd_mode", ["batch", "sample"])
@pytest.mark.parametrize("shape_kw", [{}, dict(pe_shape="full", spatial_shape=(4, 4)), dict(neuron_preset="mpbn")],
                         ids=["shifted", "full-pe", "mpbn"])
def test_staa_without_sa_fast_path_matches_reference(tsrd_mode, shape_kw):
    kw = dict(sa=False, tsrd_p=0.4, tsrd_mode=tsrd_mode, **shape_kw)
    fast, ref = STAALIF(6, T=5, **kw).double(), STAALIF(6, T=5, backend="reference", **kw).double()
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(5, 3, 6, 4, 4, **D64) * 2
    x.requires_grad_(True)
    for train in (False, True):
        fast.train(train), ref.train(train)
        torch.manual_seed(7)
        a = fast(x)
        torch.manual_seed(7)
        b = ref(x)
        assert torch.equal(a, b)
        w = torch.randn_like(a)
        ga = torch.autograd.grad((a * w).sum(), [x, *fast.parameters()])
        gb = torch.autograd.grad((b * w).sum(), [x, *ref.parameters()])
        for u, v in zip(ga, gb, strict=True):  # dL/dX too: the shift, and X at the dropped steps
            torch.testing.assert_close(u, v)


COMPILED_CASES = {
    "defaults": dict(tsrd_p=0.4),  # SA on, PE at the input, TSRD per batch
    "sample-membrane-pe-vreset": dict(tsrd_p=0.4, tsrd_mode="sample", pe_position="both", v_reset=-0.2,
                                      surrogate="sigmoid", detach_reset=True),
    "no-sa": dict(tsrd_p=0.4, sa=False),
    "scale-softmax": dict(tsrd_p=0.4, gc_fusion="scale", sa_gate="softmax"),
    "mpbn": dict(tsrd_p=0.4, neuron_preset="mpbn"),
    "mpbn-general": dict(tsrd_p=0.4, neuron_preset="mpbn", pe_position="membrane"),
}


@pytest.mark.slow
@needs_compile
@pytest.mark.parametrize("kw", list(COMPILED_CASES.values()), ids=list(COMPILED_CASES))
def test_compiled_staa_matches_reference(kw):
    torch.manual_seed(0)
    fast, ref = _perturbed_pair(kw, fast_backend="compiled")
    _assert_matches_reference(fast, ref, (5, 3, 6, 4, 4), rtol=1e-9, atol=1e-9, firing=(0.05, 0.8))


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


def _assert_matches_reference(fast, ref, shape, dtype=torch.float64, rtol=None, atol=None, firing=(0.03, 0.8)):
    """Spikes, SA gates, BN_mp running statistics and every gradient (input and parameters) of
    ``fast`` equal those of ``ref``, in eval and in training (same TSRD draws)."""
    for train in (False, True):
        x = (torch.randn(shape, dtype=dtype) * 2).requires_grad_(True)
        fast.train(train), ref.train(train)
        torch.manual_seed(7)
        a = fast(x)
        torch.manual_seed(7)
        b = ref(x)
        assert torch.equal(a, b) and firing[0] < b.mean() < firing[1]
        if getattr(ref, "last_sa_gates", None) is not None:
            torch.testing.assert_close(fast.last_sa_gates, ref.last_sa_gates, rtol=rtol, atol=atol)
        for (name, u), v in zip(fast.named_buffers(), ref.buffers(), strict=True):
            torch.testing.assert_close(u, v, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
        w = torch.randn_like(a)
        ga = torch.autograd.grad((a * w).sum(), [x, *fast.parameters()])
        gb = torch.autograd.grad((b * w).sum(), [x, *ref.parameters()])
        for (name, _), u, v in zip([("x", x), *fast.named_parameters()], ga, gb, strict=True):
            torch.testing.assert_close(u, v, rtol=rtol, atol=atol, msg=lambda m, name=name: f"{name}: {m}")
    return a


STAA_FUSED_CASES = {
    "defaults": dict(tsrd_p=0.4),
    "sample-softmax-vreset": dict(tsrd_p=0.4, tsrd_mode="sample", sa_gate="softmax", v_reset=0.3, surrogate="triangle"),
    "post_gc-sigmoid-detach": dict(tsrd_p=0.0, pe_position="post_gc", v_reset=-0.2, surrogate="sigmoid",
                                   detach_reset=True),
    "fixed-pe-scalar-keep": dict(tsrd_p=0.4, pe="fixed", mn_shape="scalar", recompute=False),
    "no-gc-sample": dict(tsrd_p=0.4, gc=False, tsrd_mode="sample", surrogate="atan"),
    "no-pe-keep": dict(tsrd_p=0.4, pe=None, recompute=False),
    "sa-only": dict(tsrd_p=0.0, pe=None, gc=False),
    "softmax-batch-keep-scalar": dict(tsrd_p=0.5, sa_gate="softmax", recompute=False, mn_shape="scalar"),
    "post_gc-tsrd-detach": dict(tsrd_p=0.5, tsrd_mode="sample", pe_position="post_gc", detach_reset=True),
    "ratios-lambda": dict(tsrd_p=0.3, sa_lambda=3.0, gc_ratio=2, sa_ratio=4, surrogate="tanh"),
    "mpbn": dict(tsrd_p=0.4, neuron_preset="mpbn"),
    "mpbn-sample-keep": dict(tsrd_p=0.4, tsrd_mode="sample", neuron_preset="mpbn", recompute=False, v_reset=-0.2),
    "mpbn-spec-neuron": dict(tsrd_p=0.3, mpbn=True, sa_gate="softmax", detach_reset=True),
}


@pytest.mark.parametrize("kw", list(STAA_FUSED_CASES.values()), ids=list(STAA_FUSED_CASES))
@pytest.mark.parametrize("rank", [5, 3])
def test_fused_staa_matches_reference(kw, rank):
    """The fused STAA kernel (X^ = X + b, hand-written backward) against the functional loop."""
    torch.manual_seed(0)
    fast, ref = _perturbed_pair(kw)
    assert fast.input_is_shifted
    out = _assert_matches_reference(fast, ref, (5, 3, 6, 4, 4) if rank == 5 else (5, 8, 6))
    assert out.grad_fn.name() == "ViewBackward0" and out.grad_fn.next_functions[0][0].name() == "_FusedSTAABackward"


@pytest.mark.parametrize("kw", [dict(tsrd_p=0.4), dict(tsrd_p=0.4, neuron_preset="mpbn", tsrd_mode="sample")],
                         ids=["defaults", "mpbn"])
def test_fused_staa_matches_reference_in_float32(kw):
    torch.manual_seed(0)
    fast, ref = _perturbed_pair(kw)
    fast, ref = fast.float(), ref.float()
    _assert_matches_reference(fast, ref, (5, 4, 6, 5, 5), dtype=torch.float32, rtol=1e-3, atol=3e-4)


GENERAL_CASES = {
    "full-pe": dict(pe_shape="full", spatial_shape=(4, 4)),
    "full-mn": dict(mn_shape="full", spatial_shape=(4, 4)),
    "gc-scale": dict(gc_fusion="scale"),
    "pe-both": dict(pe_position="both"),
    "pe-membrane": dict(pe_position="membrane"),
    "full-pe-mpbn": dict(pe_shape="full", spatial_shape=(4, 4), neuron_preset="mpbn", tsrd_mode="sample"),
}


@pytest.mark.parametrize("kw", list(GENERAL_CASES.values()), ids=list(GENERAL_CASES))
def test_staa_general_path_where_the_fused_one_does_not_apply(kw):
    """Full-shaped PE or M/N, GC "scale" and PE at the membrane take the general path (checkpointed),
    and still match, forward and backward."""
    torch.manual_seed(0)
    fast, ref = _perturbed_pair(dict(tsrd_p=0.3, **kw))
    out = _assert_matches_reference(fast, ref, (5, 3, 6, 4, 4))
    assert "_FusedSTAA" not in str(out.grad_fn.next_functions), kw


@pytest.mark.parametrize("shape", [(4, 6, 5, 3, 3), (5, 16, 5)], ids=["conv", "flat"])
@pytest.mark.parametrize("kind", ["lif", "adaptive"])
@pytest.mark.parametrize("kw", [dict(neuron_preset="mpbn"), dict(mpbn=True, v_reset=-0.3, surrogate="sigmoid",
                                                                  detach_reset=True)], ids=["mpbn", "spec-bn"])
def test_fused_lif_with_mpbn_matches_reference(shape, kind, kw):
    C = shape[2]
    make = (lambda backend: LIF(channels=C, backend=backend, **kw)) if kind == "lif" else \
        (lambda backend: AdaptiveLIF(C, backend=backend, **kw))
    fast, ref = make("fused").double(), make("reference").double()
    with torch.no_grad():
        for p in fast.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    ref.load_state_dict(fast.state_dict())
    _assert_matches_reference(fast, ref, shape, firing=(0.05, 0.9))


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
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = model(x)
        out.float().square().sum().backward()
        outs.append(out)
        grads.append(torch.cat([p.grad.float().flatten() for p in model.parameters()]))
    assert outs[0].dtype == torch.bfloat16 and torch.equal(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=0.02, atol=1e-3)


def test_compiled_backend_is_refused_where_torch_fails_its_tests(monkeypatch):
    """torch 2.4's compiler gave wrong gradients for the neuron loops, 2.6's failed on them: such a torch
    gets a clear error for backend='compiled' (and backend='auto' stays fused), never wrong numbers."""
    from staa_snn.kernels import resolve_backend

    monkeypatch.setattr(torch, "__version__", "2.4.1+cu121")
    with pytest.raises(ValueError, match=r"backend='compiled' needs torch >= 2.7 \(this is 2.4.1\+cu121"):
        STAALIF(4, T=2, backend="compiled")
    assert resolve_backend("auto", 10**6, torch.device("cpu"))[0] == "fused"
    assert STAALIF(4, T=2).backend == "fused"


@pytest.mark.slow
@needs_compile
def test_compiling_a_kernel_raises_the_recompile_limit():
    """A net's layer shapes and loop variants need more graphs per kernel than torch's default 8;
    past the limit torch would run the kernel eagerly, silently."""
    from staa_snn.kernels._compile import RECOMPILE_LIMIT, compiled

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.6
    with config.patch(**{name: 8}):
        compiled(lambda x: x + 1)  # a new function: compiled() runs (it caches per function)
        assert getattr(config, name) == RECOMPILE_LIMIT
