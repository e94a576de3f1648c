"""Step mode: one update rule per neuron, iterated by forward and by step; nets fed step by step.

The prefix property: in eval(), the logits of net.step at step t equal forward_steps(x)[t],
for every neuron kind, preset and backend (MPBN folded or not)."""

import pytest
import torch

from staa_snn.functional import staa_lif_multistep, staa_lif_step
from staa_snn.functional.surrogate import get_surrogate
from staa_snn.models import create_model, fold_mpbn
from staa_snn.models.stream import StreamState
from staa_snn.neurons import LIF, STAALIF, AdaptiveLIF

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _perturb(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its initialisation (the STAA blocks start as identities) and
    BN's running statistics made non-trivial, so the comparisons see every term."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
            if name.endswith(("bn_mp.weight", "norm.weight", ".1.weight")) or name.split(".")[-1] in ("m", "n"):
                p.abs_().add_(0.2)  # keep gains and decays positive
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
    return module


def _step_all(neuron, x_seq):
    v, out = None, []
    for t in range(x_seq.shape[0]):
        s, v = neuron.step(x_seq[t], v, t)
        out.append(s)
    return torch.stack(out), v


def test_lif_step_by_hand():
    """tau = 2, constant input 1.5: H = 0.75, 1.125 (fires, V -> 0), 0.75."""
    lif = LIF(tau=2.0)
    spikes, v = _step_all(lif, torch.full((3, 1, 1), 1.5))
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0]
    assert v.item() == pytest.approx(0.75)
    assert lif.last_firing_rate.item() == 0.0  # the last step's


NEURONS = {
    "lif": lambda **kw: LIF(channels=4, **kw),
    "adaptive": lambda **kw: AdaptiveLIF(4, **kw),
    "staa": lambda **kw: STAALIF(4, 3, tsrd_p=0.0, **kw),
    "staa_no_sa": lambda **kw: STAALIF(4, 3, sa=False, tsrd_p=0.0, **kw),
    "staa_membrane_pe": lambda **kw: STAALIF(4, 3, pe_position="both", gc_fusion="scale", tsrd_p=0.0, **kw),
    "staa_softmax_post_gc": lambda **kw: STAALIF(4, 3, sa_gate="softmax", pe_position="post_gc", pe="fixed",
                                                 v_reset=-0.2, tsrd_p=0.0, **kw),
}


@pytest.mark.parametrize("preset", ["spec", "mpbn"])
@pytest.mark.parametrize("kind", sorted(NEURONS))
def test_neuron_steps_equal_forward(kind, preset):
    """Forward on every backend and step by step: the same spikes, and in training (BN_mp's batch
    statistics per step are causal) the same gradients."""
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, 6, 6, dtype=torch.float64) * 1.5
    ref = _perturb(NEURONS[kind](backend="reference", neuron_preset=preset).double())
    for backend in ("reference", "fused", "compiled"):
        other = NEURONS[kind](backend=backend, neuron_preset=preset).double()
        other.load_state_dict(ref.state_dict())
        other.eval()
        stepped, _ = _step_all(other, x)
        torch.testing.assert_close(stepped, other(x), rtol=0, atol=0)
        assert stepped.sum() > 0 and (1 - stepped).sum() > 0
    # gradients through the stepped recurrence (the training graph), against forward's
    ref.train()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.randn_like(x)
    (ref(xa) * w).sum().backward()
    grads_forward = [p.grad.clone() for p in ref.parameters()]
    ref.zero_grad()
    (_step_all(ref, xb)[0] * w).sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad)
    for p, g in zip(ref.parameters(), grads_forward, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_staa_step_function_is_the_loop():
    """The multistep loop is staa_lif_step iterated; the straight-through spike has the same
    value and gradient as the surrogate's autograd node."""
    torch.manual_seed(1)
    T, B, C = 4, 3, 5
    x = torch.randn(T, B, C, 3, 3, dtype=torch.float64, requires_grad=True)
    x_hat = x + 0.3 * torch.randn(T, B, C, 1, 1, dtype=torch.float64)
    m = torch.rand(C, 1, 1, dtype=torch.float64, requires_grad=True)
    n = torch.rand(C, 1, 1, dtype=torch.float64) + 0.5
    drop = torch.tensor([[False], [True], [False], [True]])
    surrogate = get_surrogate("sigmoid")
    outs = []
    for straight in (False, True):
        s, v, _ = staa_lif_multistep(x, x_hat, m, n, v_threshold=0.5, v_reset=0.0, surrogate=surrogate, drop=drop,
                                     straight_through=straight)
        outs.append((s, v, torch.autograd.grad((s * torch.arange(s.numel()).view_as(s)).sum(), (x, m))))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=0, atol=0)
    for a, b in zip(outs[0][2], outs[1][2], strict=True):
        torch.testing.assert_close(a, b)
    v = torch.zeros_like(x[0])
    for t in range(T):
        s, v, _ = staa_lif_step(v, x[t], x_hat[t], m, n, v_threshold=0.5, v_reset=0.0, surrogate=surrogate,
                                drop=drop[t])
        torch.testing.assert_close(s, outs[0][0][t], rtol=0, atol=0)
    torch.testing.assert_close(v, outs[0][1], rtol=0, atol=0)


def test_step_refusals():
    staa = STAALIF(4, 2)
    x = torch.randn(3, 4, 5, 5)
    with pytest.raises(ValueError, match=r"built for T=2 steps .* step t=2 is beyond it"):
        staa.step(x, None, 2)
    with pytest.raises(ValueError, match=r"one step \[B, F\] or \[B, C, H, W\] \(no time dim\)"):
        staa.step(x.unsqueeze(0), None, 0)
    with pytest.raises(ValueError, match=r"the state must be V\[t-1\] of the input's shape"):
        staa.step(x, torch.zeros(3, 4), 0)
    with pytest.raises(ValueError, match="an int >= 0"):
        LIF().step(x, None, -1)
    # a LIF is bound to no T: it streams on
    assert LIF().step(x, None, 1000)[0].shape == x.shape


NETS = [("vgg_small", "lif", "spec"), ("vgg_small", "adaptive", "mpbn"), ("vgg_small", "staa", "spec"),
        ("vgg_small", "staa", "mpbn"), ("resnet20", "staa", "spec"), ("resnet20", "lif", "mpbn")]


@pytest.mark.parametrize("name,neuron,preset", NETS)
def test_net_step_prefix(name, neuron, preset):
    """net.step's logits at t == forward_steps(x)[t]; mean_logits after T steps == forward(x);
    for static and event inputs, on every backend, MPBN folded or not."""
    torch.manual_seed(2)
    T = 3
    net = create_model(name, num_classes=5, T=T, neuron=neuron, in_channels=2, neuron_preset=preset,
                       backend="reference")
    _perturb(net, 0.05).eval()
    events = torch.randn(2, T, 2, 8, 8)
    image = torch.randn(2, 2, 8, 8)
    # (the compiled backend once: each layer shape is a compile; the neuron test covers it everywhere)
    compiled = ["compiled"] if (name, neuron, preset) == ("vgg_small", "staa", "spec") else []
    variants = ["fused", *compiled, "reference"] + (["folded"] if preset == "mpbn" else [])
    for variant in variants:
        if variant == "folded":
            fold_mpbn(net)
        else:
            net.apply(lambda m: setattr(m, "backend", variant) if hasattr(m, "backend") else None)
        with torch.no_grad():
            for x, frames in ((events, events.unbind(1)), (image, [image] * T)):
                expected = net.forward_steps(x)
                state = net.init_state(2)
                for t, frame in enumerate(frames):
                    logits, state = net.step(frame, state)
                    torch.testing.assert_close(logits, expected[t], rtol=1e-5, atol=1e-5)
                assert state.t == T
                torch.testing.assert_close(state.mean_logits, net(x), rtol=1e-5, atol=1e-5)


def test_state_is_not_changed_in_place():
    torch.manual_seed(3)
    net = _perturb(create_model("vgg_small", num_classes=3, T=4, neuron="lif", in_channels=1), 0.05).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        _, s1 = net.step(x, net.init_state())
        a, _ = net.step(x, s1)
        b, _ = net.step(x, s1)  # the same state continued twice
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert s1.t == 1 and isinstance(s1, StreamState)


def test_net_step_refusals():
    net = create_model("vgg_small", num_classes=3, T=2, neuron="staa", in_channels=1)
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(RuntimeError, match=r"runs in eval\(\)"):
        net.step(x, net.init_state(2))
    net.eval()
    with pytest.raises(ValueError, match=r"a batch of 3 but this step's input has 2"):
        net.step(x, net.init_state(3))
    with pytest.raises(ValueError, match=r"one step \[B, 1, H, W\]"):
        net.step(x.unsqueeze(1), net.init_state())
    with pytest.raises(TypeError, match="StreamState"):
        net.step(x, None)
    with pytest.raises(ValueError, match="no step taken yet"):
        net.init_state().mean_logits
    state = net.init_state()
    with torch.no_grad():
        for _ in range(2):
            _, state = net.step(x, state)
        with pytest.raises(ValueError, match="step t=2 is beyond it"):
            net.step(x, state)


# --- early exit ----------------------------------------------------------------

from torch import nn  # noqa: E402

from staa_snn.analysis import profile_model  # noqa: E402
from staa_snn.inference import exit_curve, predict  # noqa: E402
from staa_snn.models import SpikingNet, SpikingNeuron  # noqa: E402


class _HandNet(SpikingNet):
    """Pixels -> Linear(4, 2) (row 0: 0.75 x the pixel sum, row 1: 0) -> LIF(tau 2) -> Linear(2, 2)
    with weight [[10, 0], [0, 0]], bias [0, 0.1]."""

    def __init__(self):
        super().__init__(T=3, in_channels=1, num_classes=2)
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False), SpikingNeuron(LIF(tau=2.0), 2, 3))
        self.classifier = nn.Linear(2, 2)
        with torch.no_grad():
            self.features[1].weight.copy_(torch.tensor([[0.75] * 4, [0.0] * 4]))
            self.classifier.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 0.0]]))
            self.classifier.bias.copy_(torch.tensor([0.0, 0.1]))


def test_early_exit_by_hand():
    """Sample A (pixels 1): current 3, H = 1.5 fires at step 1: logits [10, 0.1], sure of class 0
    -> exits after 1 step: 8 MACs (the first layer, real input), 2 ACs (4 MACs on spikes at rate
    1/2). Sample B (pixels 0.25): current 0.75, H = 0.375, 0.5625, 0.656: never fires, logits
    [0, 0.1], 52.5% class 1 -> all 3 steps: 24 MACs, no AC. E = 0.9 pJ AC + 4.6 pJ MAC."""
    net = _HandNet()
    x = torch.stack([torch.ones(1, 2, 2), torch.full((1, 2, 2), 0.25)])
    p = predict(net, x, threshold=0.9)
    assert p.label.tolist() == [0, 1] and p.steps.tolist() == [1, 3]
    assert p.mac.tolist() == [8.0, 24.0] and p.ac.tolist() == [2.0, 0.0]
    torch.testing.assert_close(p.energy_mj, torch.tensor([38.6e-9, 110.4e-9], dtype=torch.float64))
    assert p.confidence[1].item() == pytest.approx(torch.sigmoid(torch.tensor(0.1)).item())
    full = predict(net, x, exit="none")
    assert full.steps.tolist() == [3, 3] and full.ac.tolist() == [6.0, 0.0]  # A fires at every step (H = 1.5)
    curve = exit_curve(net, [(x, torch.tensor([0, 1]))], [0.9, 0.99999])
    first, low, high = curve["fixed"][0], curve["confidence"][0], curve["confidence"][1]
    assert first["acc"] == 1.0 and first["mean_steps"] == 1.0
    assert first["mean_energy_mj"] == pytest.approx((38.6e-9 + 36.8e-9) / 2)
    assert low["mean_steps"] == 2.0 and low["mean_energy_mj"] == pytest.approx((38.6e-9 + 110.4e-9) / 2)
    assert high["mean_steps"] == 3.0  # 10 - 0.1 logits are 99.995% sure: below 0.99999, A runs on
    with pytest.raises(ValueError, match=r"threshold in \(0, 1\]"):
        predict(net, x, threshold=1.5)
    with pytest.raises(ValueError, match="unknown exit"):
        predict(net, x, exit="entropy")
    net.train()
    predict(net, x)
    assert net.training  # put back in its mode
    with pytest.raises(TypeError, match="floating-point input"):
        predict(net, x.to(torch.uint8))


def test_early_exit_matches_forward_and_profile():
    """On a STAA net: predictions and exit steps as computed from forward_steps; with every step
    run, the mean energy is profile_model's."""
    torch.manual_seed(4)
    net = _perturb(create_model("vgg_small", num_classes=4, T=4, neuron="staa", in_channels=1), 0.3).eval()
    x = torch.randn(6, 1, 8, 8) * 2
    with torch.no_grad():
        steps = net.forward_steps(x)
    running = steps.cumsum(0) / torch.arange(1, 5).view(4, 1, 1)
    conf, label = torch.softmax(running, -1).max(-1)
    threshold = 0.5  # (confidences of 0.33-0.75 over the steps: some exit at 1, 2, 3 steps, some never)
    sure = conf >= threshold
    sure[-1] = True
    at = sure.int().argmax(0)
    p = predict(net, x, threshold=threshold)
    assert p.steps.tolist() == (at + 1).tolist()
    assert p.label.tolist() == label.gather(0, at.view(1, -1))[0].tolist()
    assert 1 < p.steps.float().mean() < 4
    full = predict(net, x, exit="none")
    assert full.energy_mj.mean().item() == pytest.approx(profile_model(net, x).energy_mj, rel=1e-6)
    assert (p.energy_mj <= full.energy_mj + 1e-18).all() and (p.energy_mj < full.energy_mj).any()


def test_a_registered_neuron_is_a_kind_everywhere():
    """@register_neuron declares a kind once: create_model builds it (passing T when it needs T),
    its options are checked, and the step mode comes with the base class."""
    from staa_snn.neurons import NEURONS, register_neuron
    from staa_snn.models import neuron_options


    @register_neuron("slow_lif")
    class SlowLIF(LIF):
        def __init__(self, *, channels=None, tau: float = 8.0, **kw):
            super().__init__(tau=tau, channels=channels, **kw)

    try:
        assert "tau" in neuron_options("slow_lif") and "T" not in neuron_options("slow_lif")
        net = create_model("vgg_small", num_classes=3, T=2, neuron="slow_lif", in_channels=1).eval()
        slots = [m for m in net.modules() if isinstance(m, SlowLIF)]
        assert len(slots) == 4 and all(m.tau == 8.0 and m.channels in (32, 64) for m in slots)
        x = torch.randn(2, 1, 8, 8)
        with torch.no_grad():
            _, state = net.step(x, net.init_state())
            logits, _ = net.step(x, state)
            torch.testing.assert_close(logits, net.forward_steps(x)[1])
        with pytest.raises(TypeError, match="unknown option"):
            create_model("vgg_small", num_classes=3, T=2, neuron="slow_lif", gc=False)
        with pytest.raises(ValueError, match="is taken by"):
            register_neuron("lif")(SlowLIF)
    finally:
        NEURONS.pop("slow_lif", None)


# --- monitors --------------------------------------------------------------------

from staa_snn.analysis import Monitor  # noqa: E402


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_monitor_records_what_the_layers_compute(backend):
    """The recorded spikes are the layer's own output, V[t] the stepped recurrence's, the SA gates
    the layer's last_sa_gates; the means are those tensors' means; the net's output is unchanged."""
    torch.manual_seed(5)
    net = _perturb(create_model("vgg_small", num_classes=3, T=3, neuron="staa", in_channels=1, backend=backend),
                   0.1).eval()
    x = torch.randn(4, 1, 8, 8) * 2
    outputs = {}
    hooks = [m.register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out))
             for name, m in net.named_modules() if isinstance(m, STAALIF)]
    with torch.no_grad():
        plain = net(x)
        gates = {name: m.last_sa_gates.clone() for name, m in net.named_modules() if isinstance(m, STAALIF)}
        expected = dict(outputs)
        with Monitor(net, full=True) as mon:
            again = net(x)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(again, plain, rtol=1e-5, atol=1e-5)
    assert mon.layers == list(expected)
    for name, spikes in expected.items():
        layer = dict(net.named_modules())[name]
        (recorded,) = mon.tensors(name, "spikes")
        torch.testing.assert_close(recorded, spikes, rtol=0, atol=0)
        torch.testing.assert_close(mon.mean(name, "spikes"), spikes.flatten(1).mean(1))
        (v,) = mon.tensors(name, "v")
        torch.testing.assert_close(mon.mean(name, "v"), v.flatten(1).mean(1).float())
        (g,) = mon.tensors(name, "sa_gates")
        torch.testing.assert_close(g, gates[name], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mon.mean(name, "sa_gates"), g.transpose(1, 2).flatten(2).mean(2))
        assert "forward" not in vars(layer)  # the layer is itself again
    assert mon.recorded_steps(mon.layers[0]) == [0, 1, 2]


def test_monitor_v_by_hand_and_bounds():
    """LIF(tau 2) on 1.5: V = 0.75, 0 (fired), 0.75; steps and layers chosen; means only by default."""
    lif = LIF(tau=2.0)
    with Monitor(lif, steps=[0, 2]) as mon:
        lif(torch.full((3, 2, 1), 1.5))
        lif(torch.full((3, 2, 1), 1.5))
    assert mon.mean("", "v").tolist() == pytest.approx([0.75, 0.75])
    assert mon.mean("", "spikes").tolist() == [0.0, 0.0]
    assert mon.recorded_steps("") == [0, 2]
    with pytest.raises(ValueError, match="means only"):
        mon.tensors("", "v")
    with pytest.raises(ValueError, match="nothing recorded for  sa_gates: no SA"):
        mon.mean("", "sa_gates")
    net = create_model("vgg_small", num_classes=3, T=2, neuron="lif", in_channels=1)
    with pytest.raises(ValueError, match="no neuron layer named 'features.0'; the neuron layers are: features.2.neuron"):
        Monitor(net, layers=["features.0"])
    with pytest.raises(ValueError, match=r"steps \[7\] reach beyond the 2 steps"):
        Monitor(net, steps=7)
    with pytest.raises(ValueError, match="step indices, ints >= 0"):
        Monitor(net, steps=[-1])
    with Monitor(net, layers="features.2.neuron") as mon:  # one name
        pass
    with pytest.raises(ValueError, match="it records forward passes, not net.step"):
        mon.mean("features.2.neuron", "v")
    # training through a monitor: gradients as without it
    x = torch.randn(2, 1, 8, 8)
    net.train()
    net(x).sum().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    with Monitor(net, layers=["features.2.neuron"]):
        net(x).sum().backward()
    for p, g in zip(net.parameters(), want, strict=True):
        torch.testing.assert_close(p.grad, g)


# --- streaming a recording -------------------------------------------------------

def test_stream_a_recording_step_by_step(tmp_path, monkeypatch, capsys):
    """split_by=number: the frames of predict, fed one at a time; each step's prediction is that
    of forward_steps averaged so far. split_by=time: T windows of the span. The CLI prints a
    line per step and refuses what is not a recording."""
    import json

    import numpy as np

    from staa_snn import cli, inference
    from staa_snn.data import writers
    from staa_snn.data.events import events_to_frames

    torch.manual_seed(6)
    net = _perturb(create_model("vgg_small", num_classes=3, T=3, in_channels=2, neuron="staa"), 0.1).eval()
    net.pretrained_cfg = {"classes": ["a", "b", "c"], "normalization": None, "size": 16, "in_channels": 2,
                          "kind": "events", "T": 3}
    ev = writers.random_events(np.random.default_rng(1), 400)
    path = writers.write_bytes(tmp_path / "rec.aedat", writers.aedat2_bytes(**ev))
    assert (np.diff(ev["t"]) >= 0).all()
    shuffled = np.random.default_rng(2).permutation(400)
    np.savez(tmp_path / "shuffled.npz", **{k: np.asarray(v)[shuffled] for k, v in ev.items()})
    assert [s["events"] for s in inference.stream_recording(net, tmp_path / "shuffled.npz", sensor=(128, 128))] == \
        [s["events"] for s in inference.stream_recording(net, path)]  # taken in time order
    for split_by in ("number", "time"):
        steps = list(inference.stream_recording(net, path, split_by=split_by))
        frames = torch.from_numpy(events_to_frames(ev["t"], ev["x"], ev["y"], ev["p"], 3, split_by=split_by,
                                                   size=16).astype(np.float32))
        with torch.no_grad():
            running = net.forward_steps(frames.unsqueeze(0)).cumsum(0)[:, 0] / torch.arange(1, 4).view(3, 1)
        probs = torch.softmax(running, -1)
        assert [s["label"] for s in steps] == probs.argmax(-1).tolist()
        assert [s["confidence"] for s in steps] == pytest.approx(probs.max(-1).values.tolist(), abs=1e-6)
        assert sum(s["events"] for s in steps) == 400 and [s["step"] for s in steps] == [1, 2, 3]
    monkeypatch.setattr(inference, "load_net", lambda source: net)
    capsys.readouterr()
    assert cli.main(["stream", "--weights", "any", str(path), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith("step 1/3: ") and " ms" in out[0]
    steps = json.loads((tmp_path / "s.json").read_text())["steps"]
    assert len(steps) == 3 and steps[0]["t_start_us"] == int(ev["t"][0])  # the file's own clock
    t0, t1, t2 = ((s["t_start_us"] - ev["t"][0]) / 1e3 for s in steps)
    for line, a, s in zip(out, (t0, t1, t2), steps):  # on screen, from the first event, in ms
        assert f" events at {a:.1f}-{(s['t_end_us'] - ev['t'][0]) / 1e3:.1f} ms -> " in line, line
    assert " events at 0.0-" in out[0]
    late = {**{k: np.asarray(v) for k, v in ev.items()}, "t": np.asarray(ev["t"]) + 1_605_537_493_718_345}
    np.savez(tmp_path / "late.npz", **late)  # a DVXplorer's clock: the same windows, the same lines
    assert cli.main(["stream", "--weights", "any", "--sensor", "128x128", str(tmp_path / "late.npz")]) == 0
    def windows(lines):  # each line but its latency
        return [line.rsplit(", ", 1)[0] for line in lines]

    assert windows(capsys.readouterr().out.splitlines()) == windows(out)
    (tmp_path / "x.png").write_bytes(b"png")
    assert cli.main(["stream", "--weights", "any", str(tmp_path / "x.png")]) == 2
    assert "expected an event recording" in capsys.readouterr().err
    net.pretrained_cfg = {**net.pretrained_cfg, "kind": "static"}
    assert cli.main(["stream", "--weights", "any", str(path)]) == 2
    assert "trained on event frames" in capsys.readouterr().err


def test_the_path_table():
    """STAALIF.path names the computation forward runs (its docstring's table)."""
    assert STAALIF(4, 2).path == "fused"
    assert STAALIF(4, 2, backend="compiled").path == "fused"
    assert STAALIF(4, 2, sa=False).path == "adaptive"
    assert STAALIF(4, 2, gc_fusion="scale").path == "reference"
    assert STAALIF(4, 2, gc_fusion="scale", backend="compiled").path == "compiled"
    assert STAALIF(4, 2, backend="reference").path == "reference"
    assert STAALIF(4, 2, pe_position="membrane", sa=False, backend="compiled").path == "compiled"
