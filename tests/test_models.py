"""A sweep over every registered model (timm style), plus the paper's counts."""

import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from staa_snn.models import SpikingNeuron, convert_neurons, create_model, list_models
from staa_snn.neurons import LIF, STAALIF, AdaptiveLIF

MODELS = list_models()
NEURONS = ["lif", "adaptive", "staa"]
# ImageNet nets shrink 32x32 to 1x1 by the last stage, where BN over a tiny batch silences every
# neuron; 64x64 keeps them (and their gradients) alive at this batch size.
INPUT_SIZE = {"resnet18": 64, "resnet34": 64}


def test_registry_lists_the_papers_nets():
    assert MODELS == ["resnet18", "resnet19", "resnet20", "resnet34", "vgg13", "vgg_quick", "vgg_small", "vgg_tiny"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("T", [1, 2, 4])
def test_output_shape_per_T(name, T):
    model = create_model(name, num_classes=7, T=T, neuron="staa").eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7)
    steps = model.forward_steps(x)
    assert steps.shape == (T, 2, 7)
    torch.testing.assert_close(model(x), steps.mean(0))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("neuron", NEURONS)
def test_gradients_finite_and_everywhere(name, neuron):
    model = create_model(name, num_classes=5, T=2, neuron=neuron, **({"tsrd_p": 0.0} if neuron == "staa" else {}))
    size = INPUT_SIZE.get(name, 32)
    x = torch.randn(2, 3, size, size) * 2
    out = model(x)
    assert torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 3])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    # the loss reaches the first layer through every neuron layer
    assert model.features[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_eval_deterministic_and_event_input(name):
    model = create_model(name, num_classes=4, T=2, neuron="staa", in_channels=2).eval()
    ev = torch.rand(3, 2, 2, 32, 32)  # [B, T, C, H, W], the data loaders' layout
    a, b = model(ev), model(ev)
    assert a.shape == (3, 4) and torch.equal(a, b)
    torch.testing.assert_close(model(ev.transpose(0, 1).contiguous(), time_first=True), a)


def test_bad_inputs_and_options():
    model = create_model("resnet20", num_classes=10, T=4)
    with pytest.raises(ValueError, match=r"model built for T=4 steps got an event batch \[B, T, C, H, W\] with 3 steps"):
        model(torch.randn(2, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="rank 3"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"static batch \[B, 3, H, W\]"):
        model(torch.randn(2, 2, 32, 32))
    with pytest.raises(ValueError, match=r"unknown model 'resnet50'; expected one of \['resnet18'"):
        create_model("resnet50", num_classes=10, T=4)
    with pytest.raises(ValueError, match=r"unknown neuron 'izhikevich'; expected one of \['adaptive', 'lif', 'staa'\]"):
        create_model("vgg13", num_classes=10, T=4, neuron="izhikevich")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['gc_ration'\] for neuron='staa'; valid options: .*'gc_ratio'"):
        create_model("vgg13", num_classes=10, T=4, gc_ration=8)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['gc'\] for neuron='lif'"):
        create_model("vgg13", num_classes=10, T=4, neuron="lif", gc=False)


def _params(m):
    return sum(p.numel() for p in m.parameters())


def _dense_macs(model, x):
    with FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return counter.get_total_flops() / 2  # the counter reports 2 FLOPs per multiply-accumulate


def test_resnet20_counts_match_the_paper():
    lif = create_model("resnet20", num_classes=100, T=4, neuron="lif")
    staa = create_model("resnet20", num_classes=100, T=4, neuron="staa")
    assert abs(_params(lif) / 11.29e6 - 1) < 0.002
    assert abs(_params(staa) / 12.69e6 - 1) < 0.01
    assert 0.86e9 <= _dense_macs(lif, torch.randn(1, 3, 32, 32)) <= 0.88e9


def test_ablation_rows_are_one_call_each():
    base = _params(create_model("resnet20", num_classes=100, T=4, neuron="adaptive"))
    gc_only = _params(create_model("resnet20", num_classes=100, T=4, pe=None, sa=False))
    sa_only = _params(create_model("resnet20", num_classes=100, T=4, pe=None, gc=False))
    # GC (r = 4) and SA (r_sa = 16) each add about C^2 / 2 per neuron layer: ~0.70 M each here
    assert 0.69e6 < gc_only - base < 0.72e6
    assert 0.69e6 < sa_only - base < 0.72e6
    r8 = _params(create_model("resnet20", num_classes=100, T=4, pe=None, sa=False, gc_ratio=8))
    assert 0.34e6 < r8 - base < 0.37e6


def test_convert_our_net_to_staa_and_back_is_exact_at_init():
    lif_net = create_model("resnet20", num_classes=10, T=2, neuron="lif").eval()
    x = torch.randn(2, 3, 32, 32) * 2
    ref = lif_net(x)
    staa_net = convert_neurons(copy.deepcopy(lif_net), "staa", gc_ratio=4)
    neurons = [m.neuron for m in staa_net.modules() if isinstance(m, SpikingNeuron)]
    assert len(neurons) == 19 and all(isinstance(n, STAALIF) and n.T == 2 for n in neurons)
    assert [n.channels for n in neurons][:3] == [64, 64, 64] and neurons[-1].channels == 512
    assert torch.equal(staa_net.eval()(x), ref)  # STAA-LIF starts as the LIF
    back = convert_neurons(staa_net, "lif")
    assert all(type(m.neuron) is LIF for m in back.modules() if isinstance(m, SpikingNeuron))
    assert torch.equal(back(x), ref)
    with pytest.raises(ValueError, match="T=3 differs from the model's T=2"):
        convert_neurons(copy.deepcopy(lif_net), "staa", T=3)


def test_convert_with_full_tables_reads_each_layers_shape_from_an_example():
    """pe_shape / mn_shape="full" through convert_neurons: the same tables, shapes and outputs as
    create_model(..., input_size=) builds, from one example input."""
    options = dict(pe_shape="full", mn_shape="full")
    built = create_model("vgg_small", num_classes=10, T=2, neuron="staa", in_channels=1, input_size=(12, 10),
                         **options)
    lif_net = create_model("vgg_small", num_classes=10, T=2, neuron="lif", in_channels=1)
    with pytest.raises(ValueError, match=r"mn_shape='full' and pe_shape='full' gives.*pass example_input="):
        convert_neurons(copy.deepcopy(lif_net), "staa", **options)
    lif_net.train()
    converted = convert_neurons(lif_net, "staa", example_input=torch.zeros(1, 1, 12, 10), **options)
    assert converted.training  # the mode it came in
    shapes = lambda net: {k: tuple(v.shape) for k, v in net.state_dict().items()}  # noqa: E731
    assert shapes(converted) == shapes(built)
    assert {tuple(m.neuron.pe.p.shape[-2:]) for m in converted.modules() if isinstance(m, SpikingNeuron)} == \
        {(12, 10), (6, 5)}  # the stem's layers, then after one pooling
    converted.load_state_dict(built.state_dict())
    x = torch.randn(3, 1, 12, 10) * 2
    assert torch.equal(converted.eval()(x), built.eval()(x))


def _spikingjelly_net(T):
    from spikingjelly.activation_based import layer, neuron, surrogate

    def block(c_in, c_out):
        return [
            layer.SeqToANNContainer(torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), torch.nn.BatchNorm2d(c_out)),
            neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m"),
        ]

    return torch.nn.Sequential(
        *block(3, 8), *block(8, 16),
        layer.SeqToANNContainer(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5)),
    )


def test_convert_spikingjelly_net():
    pytest.importorskip("spikingjelly.activation_based", reason="SpikingJelly is an optional extra ([dev] installs it)")
    from spikingjelly.activation_based import functional

    T = 4
    net = _spikingjelly_net(T).double().eval()
    x = torch.randn(T, 3, 3, 8, 8, dtype=torch.float64) * 2
    functional.reset_net(net)
    ref = net(x)
    functional.reset_net(net)  # spikingjelly keeps the membrane as state; drop it before copying
    converted = convert_neurons(copy.deepcopy(net), "staa", T=T)
    staa = [m for m in converted.modules() if isinstance(m, STAALIF)]
    assert [m.channels for m in staa] == [8, 16]
    assert staa[0].surrogate.name == "atan" and staa[0].surrogate.alpha == 2.0  # carried over
    assert not any(type(m).__name__ == "LIFNode" for m in converted.modules())
    out = converted(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref)  # STAA-LIF at init computes spikingjelly's LIF (tau = 2, hard reset)
    out.sum().backward()
    assert all(p.grad is not None for p in converted.parameters())
    assert isinstance(convert_neurons(copy.deepcopy(net), "adaptive").get_submodule("1"), AdaptiveLIF)
    full = convert_neurons(copy.deepcopy(net), "staa", T=T, example_input=x, pe_shape="full")
    assert [tuple(m.pe.p.shape) for m in full.modules() if isinstance(m, STAALIF)] == [(T, 8, 8, 8), (T, 16, 8, 8)]
    torch.testing.assert_close(full(x), ref)  # still the LIF at init


@pytest.mark.parametrize("name,neuron,size,options", [
    ("resnet20", "staa", (32, 24), dict(pe_shape="full", mn_shape="full")),
    ("vgg13", "adaptive", (48, 40), dict(mn_shape="full")),
])
def test_full_tables_get_each_layers_own_spatial_shape(name, neuron, size, options):
    model = create_model(name, num_classes=10, T=2, neuron=neuron, input_size=size, **options)
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.__setitem__(m, tuple(a[0].shape[3:])))
             for m in model.modules() if isinstance(m, AdaptiveLIF)]
    model(torch.rand(2, 3, *size)).sum().backward()
    for h in hooks:
        h.remove()
    shapes = {m: m.spatial_shape for m in seen}
    assert shapes == seen and len(set(seen.values())) >= 3  # every stage's own (H, W), from the input's down
    first = next(iter(seen))
    assert first.spatial_shape == size and first.m.shape == (first.channels, *size)
    if neuron == "staa":
        assert first.pe.p.shape == (2, first.channels, *size)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match=r"mn_shape='full' .*pass input_size=\(H, W\)"):
        create_model(name, num_classes=10, T=2, neuron=neuron, **options)
    with pytest.raises(ValueError, match=r"input_size=\(4, 4\) is too small for vgg13"):
        create_model("vgg13", num_classes=10, T=2, neuron=neuron, input_size=4, **options)


@pytest.mark.parametrize("neuron", ["lif", "staa"])
@pytest.mark.parametrize("backend", ["fused", "reference", "compiled"])
def test_torch_compile_of_a_whole_net_has_no_graph_break(neuron, backend):
    # The spike storage (data pointers, a context variable), TSRD's host-side mask and the
    # neurons' own compiled loops all step aside while Dynamo traces a whole net.
    from staa_snn.kernels._compile import compile_unsupported

    if backend == "compiled" and compile_unsupported():
        pytest.skip(compile_unsupported())
    torch._dynamo.reset()
    model = create_model("vgg_small", num_classes=10, T=2, neuron=neuron, in_channels=1, backend=backend, tsrd_p=0.5) \
        if neuron == "staa" else create_model("vgg_small", num_classes=10, T=2, neuron=neuron, in_channels=1, backend=backend)
    explained = torch._dynamo.explain(model.train())(torch.rand(3, 1, 8, 8))
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_pretrained_cfg_is_typed_and_reads_as_the_dict_it_replaced():
    from staa_snn.models.pretrained import PretrainedCfg, describe_inputs

    inputs = {"classes": ["a", "b"], "normalization": {"mean": [0.5], "std": [0.25]}, "size": 8, "in_channels": 1,
              "kind": "static"}
    cfg = describe_inputs("vgg_small", 4, "digits", inputs)
    assert isinstance(cfg, PretrainedCfg) and cfg.size == 8 and cfg.classes == ["a", "b"]
    assert cfg == {"name": "vgg_small", "T": 4, "dataset": "digits", **inputs} and cfg["kind"] == "static"
    assert {**cfg, "kind": "events"}["kind"] == "events" and cfg.to_dict() == dict(cfg)
    old = describe_inputs("vgg_small", 4, "digits", None)  # a checkpoint from before inputs were stored
    assert dict(old) == {"name": "vgg_small", "T": 4, "dataset": "digits", "classes": None, "normalization": None}
    assert old.get("size") is None and "size" not in old
    with pytest.raises(KeyError):
        old["size"]  # noqa: B018
