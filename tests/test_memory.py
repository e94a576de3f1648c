"""train.memory: checkpointed neuron segments give the plain net's gradients, hold a fraction of its
memory, and ``auto`` decides from a measured budget without touching the net."""

import copy

import pytest
import torch
from torch import nn

from staa_snn.kernels.spike_storage import saved_tensor_bytes
from staa_snn.models import create_model
from staa_snn.models.memory import neuron_segments
from staa_snn.training import ConfigError, train
from staa_snn.training.memory import activation_bytes, resolve_memory

from tiny_runs import strip, tiny

CASES = [("lif", {}), ("staa", {"tsrd_p": 0.3}), ("lif", {"neuron_preset": "mpbn"}),
         ("staa", {"neuron_preset": "mpbn", "tsrd_p": 0.3})]


def _step(net, x, seed):
    torch.manual_seed(seed)  # TSRD's masks: the same stream for both nets
    out = net(x)
    (out.square().sum() + out[:, 0].sum()).backward()
    return out.detach()


@pytest.mark.parametrize("name", ["vgg_small", "resnet20"])
@pytest.mark.parametrize("neuron, options", CASES, ids=["lif", "staa", "lif-mpbn", "staa-mpbn"])
def test_checkpointed_gradients_equal_the_plain_ones(name, neuron, options):
    """float64: the output, every gradient and every buffer after the step (BatchNorm's and BN_mp's
    running statistics, updated once, not again by the recompute) equal the plain net's; TSRD's
    random masks are replayed in the recompute."""
    torch.manual_seed(0)
    plain = create_model(name, num_classes=5, T=3, in_channels=2, neuron=neuron, **options).double().train()
    ckpt = copy.deepcopy(plain).set_memory("checkpoint")
    x = torch.randn(4, 3, 2, 16, 16, dtype=torch.float64)
    out_plain, out_ckpt = _step(plain, x, 1), _step(ckpt, x, 1)
    torch.testing.assert_close(out_ckpt, out_plain, rtol=1e-12, atol=1e-12)
    grads = dict(ckpt.named_parameters())
    for key, p in plain.named_parameters():
        assert p.grad is not None and grads[key].grad is not None, key
        torch.testing.assert_close(grads[key].grad, p.grad, rtol=1e-10, atol=1e-12, msg=key)
    buffers = dict(ckpt.named_buffers())
    moved = 0
    for key, b in plain.named_buffers():
        assert torch.equal(buffers[key], b), key
        moved += key.endswith("num_batches_tracked") and int(b) == 1
    assert moved >= 4  # the running statistics did move (once)


def test_checkpointed_segments_end_at_each_neuron_and_hold_only_their_inputs():
    net = create_model("vgg_small", num_classes=5, T=2, in_channels=1, neuron="staa")
    segments = neuron_segments(net.features)
    # conv BN N | conv BN N | pool conv BN N | conv BN N | pool GAP (runs as it is)
    assert [(c, [type(m).__name__ for m in ms]) for c, ms in segments] == [
        (True, ["Conv2d", "BatchNorm2d", "SpikingNeuron"]), (True, ["Conv2d", "BatchNorm2d", "SpikingNeuron"]),
        (True, ["AvgPool2d", "Conv2d", "BatchNorm2d", "SpikingNeuron"]),
        (True, ["Conv2d", "BatchNorm2d", "SpikingNeuron"]), (False, ["AvgPool2d", "AdaptiveAvgPool2d"])]
    x = torch.randn(8, 1, 16, 16)
    plain = saved_tensor_bytes(lambda: net(x))
    held = saved_tensor_bytes(lambda: net.set_memory("checkpoint")(x))
    # Held: the image, three segment inputs as bool (1 byte per spike: 2 x 8 x 32 x 16 x 16, then
    # 2 x 8 x 64 x 8 x 8 and the last pool's spikes), and the few bytes of GAP and the classifier.
    spikes = 2 * 8 * (32 * 16 * 16 * 2 + 64 * 8 * 8 * 2)
    assert spikes <= held - x.numel() * 4 <= spikes + 2**14
    assert held < plain / 8
    with torch.no_grad():  # no gradients, or in eval(): the plain forward
        net.eval()
        torch.testing.assert_close(net(x), net.set_memory("none")(x), rtol=0, atol=0)


def test_set_memory_refuses_what_it_cannot_checkpoint():
    net = create_model("vgg_small", num_classes=5, T=2, in_channels=1, neuron="lif")
    with pytest.raises(ValueError, match="memory must be 'none' or 'checkpoint', got 'auto'"):
        net.set_memory("auto")
    net.features = nn.ModuleList(list(net.features))
    with pytest.raises(TypeError, match="needs an nn.Sequential; got ModuleList"):
        net.set_memory("checkpoint")
    with pytest.raises(ConfigError, match="train.memory=checkpoint .* Linear is not a SpikingNet: use train.memory=none"):
        resolve_memory("checkpoint", nn.Linear(2, 2), None, 4, torch.device("cpu"))
    assert resolve_memory("auto", nn.Linear(2, 2), None, 4, torch.device("cpu"))[:2] == ("none", None)
    with pytest.raises(ValueError, match=r"segments must be a whole number from 0 to 4 .* got 5"):
        create_model("vgg_small", num_classes=5, T=2, in_channels=1, neuron="lif").set_memory("checkpoint", 5)


def test_auto_measures_without_touching_the_net():
    """The probe's forward leaves the buffers, the mode and the random streams as they were, and its
    figure is the bytes of a training forward of the batch (two samples, scaled)."""
    torch.manual_seed(0)
    net = create_model("vgg_small", num_classes=5, T=2, in_channels=1, neuron="staa", tsrd_p=0.3).eval()
    data = [(torch.randn(1, 16, 16), 0) for _ in range(6)]
    before = {k: b.clone() for k, b in net.state_dict().items()}
    rng = torch.get_rng_state()
    mode, segments, why = resolve_memory("auto", net, data, 6, torch.device("cpu"), budget_gib=1.0)
    assert torch.equal(torch.get_rng_state(), rng) and not net.training and net.memory == "none"
    assert all(torch.equal(b, before[k]) for k, b in net.state_dict().items())
    assert (mode, segments) == ("none", None)
    assert why.startswith("auto: a training step holds about 0.00 GiB of activations, within the budget of 1.00 GiB "
                          "(train.memory_budget)")
    x = torch.stack([d[0] for d in data])
    two = activation_bytes(net, x[:2])
    held = [activation_bytes(net.set_memory("checkpoint", k), x) for k in range(5)]
    net.set_memory("none")
    assert abs(held[0] - 3 * two) <= 1e-2 * held[0]  # linear in the batch (but a few KiB)
    assert all(a > b for a, b in zip(held, held[1:]))  # each segment recomputed holds less
    gib = 2**30
    # the fewest leading segments whose activations fit: 2, between held[2] and held[1]
    mode, segments, why = resolve_memory("auto", net, data, 6, torch.device("cpu"),
                                         budget_gib=(held[1] + held[2]) / 2 / gib)
    assert (mode, segments) == ("checkpoint", 2) and "with 2 of 4 neuron segments recomputed" in why
    mode, segments, why = resolve_memory("auto", net, data, 6, torch.device("cpu"), budget_gib=held[4] / gib)
    assert (mode, segments) == ("checkpoint", None) and why.endswith("with 4 of 4 neuron segments recomputed, 0.00 GiB")
    mode, segments, why = resolve_memory("auto", net, data, 6, torch.device("cpu"), budget_gib=held[4] / 2 / gib)
    assert (mode, segments) == ("checkpoint", None) and why.endswith(", still over it")


def test_some_segments_checkpointed_give_the_plain_gradients():
    torch.manual_seed(0)
    plain = create_model("resnet20", num_classes=5, T=2, in_channels=2, neuron="staa", tsrd_p=0.3).double()
    ckpt = copy.deepcopy(plain).set_memory("checkpoint", 3)
    x = torch.randn(2, 2, 2, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(_step(ckpt, x, 1), _step(plain, x, 1), rtol=1e-12, atol=1e-12)
    grads = dict(ckpt.named_parameters())
    for key, p in plain.named_parameters():
        torch.testing.assert_close(grads[key].grad, p.grad, rtol=1e-10, atol=1e-12, msg=key)


def test_training_with_checkpoints_repeats_the_plain_run(tmp_path):
    """The same job with train.memory=none and with auto on a budget it exceeds: the same losses and
    accuracies, epoch by epoch; the run folder says which mode ran and why."""
    import json

    plain = train(tiny(tmp_path, "train.memory=none", "model.tsrd_p=0.2", name="plain"))
    ckpt = train(tiny(tmp_path, "train.memory_budget=1e-6", "model.tsrd_p=0.2", name="ckpt"))
    assert strip(ckpt.history) == strip(plain.history)
    meta = json.loads((tmp_path / "ckpt" / "meta.json").read_text())
    assert meta["memory"] == "checkpoint" and "over the budget" in meta["memory_reason"]
    assert json.loads((tmp_path / "plain" / "meta.json").read_text())["memory_reason"] == "as configured"
