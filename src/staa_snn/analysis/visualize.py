"""Figures of trained nets (paper, Sec. 4.4): Grad-CAM of the spiking feature
maps aggregated over the time steps, firing rates per layer, SA gates per step
and layer, and the learned PE and M, N.

Grad-CAM is pytorch-grad-cam's (``pip install -e ".[viz]" (in the repository)``). Our nets
keep time folded in the batch, ``[T*B, C, H, W]``; its ``reshape_transform``
averages the captured activations and gradients over the ``T`` steps, so the
map is Grad-CAM of the time-averaged spike map (the firing-rate map), weighted
by the gradient averaged over steps and positions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.layers import SpikingNeuron
from ..neurons import recorded
from .figures import save, subplots
from ..measure import firing_rates


def neuron_slots(model: nn.Module) -> list[str]:
    """Names of the neuron slots (``[T*B, C, ...]`` spike outputs), in forward order."""
    return [name for name, m in model.named_modules() if isinstance(m, SpikingNeuron)]


def check_cam_layer(model: nn.Module, layer: str) -> None:
    """A ValueError listing the neuron layers when ``layer`` is not one of them."""
    slots = neuron_slots(model)
    if layer not in slots:
        raise ValueError(f"no neuron layer {layer!r} for Grad-CAM; the neuron layers are: {', '.join(slots)}")


def default_cam_layer(model: nn.Module, inputs: torch.Tensor) -> str:
    """The last neuron slot whose spike map is still spatial (at least 2x2)."""
    shapes: dict[str, tuple] = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, a, out, n=n: shapes.__setitem__(n, tuple(out.shape))) for n in neuron_slots(model)]
    try:
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for h in hooks:
            h.remove()
    spatial = [n for n, s in shapes.items() if len(s) == 4 and s[-1] >= 2 and s[-2] >= 2]
    if not spatial:
        raise ValueError("the model has no neuron layer with a spatial spike map for Grad-CAM")
    return spatial[-1]


def gradcam(model: nn.Module, inputs: torch.Tensor, layer: str, targets: list[int] | None = None) -> np.ndarray:
    """Grad-CAM maps ``[B, H, W]`` in ``[0, 1]`` at the input resolution for
    the neuron slot ``layer``; ``targets``: class per sample (default: predicted)."""
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as e:
        raise ImportError('Grad-CAM needs pytorch-grad-cam: pip install -e ".[viz]" (in the repository)') from e
    T = model.T
    check_cam_layer(model, layer)
    module = model.get_submodule(layer)
    model.eval()

    def over_steps(a: torch.Tensor) -> torch.Tensor:
        return a.unflatten(0, (T, -1)).mean(0)

    with GradCAM(model=model, target_layers=[module], reshape_transform=over_steps) as cam:
        chosen = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
        return cam(input_tensor=inputs, targets=chosen)


def display_image(x: torch.Tensor) -> np.ndarray:
    """An input sample as an ``[H, W]`` or ``[H, W, 3]`` array in ``[0, 1]``
    (event frames: all events summed over steps and polarities)."""
    x = x.detach().float()
    if x.dim() == 4:  # [T, 2, H, W]
        x = x.sum((0, 1), keepdim=False).unsqueeze(0)
    img = x.permute(1, 2, 0).numpy() if x.shape[0] == 3 else x[0].numpy()
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo + 1e-12)


def figure_gradcam(inputs: torch.Tensor, labels, cams: dict[str, np.ndarray], layer: str, path: Path) -> Path:
    n, names = len(inputs), list(cams)
    fig, axes = subplots(n, 1 + len(names), figsize=(2.1 * (1 + len(names)), 2.1 * n), squeeze=False)
    for i in range(n):
        img = display_image(inputs[i])
        axes[i, 0].imshow(img, cmap="gray" if img.ndim == 2 else None)
        axes[i, 0].set_title(f"label {int(labels[i])}", fontsize=8)
        for j, name in enumerate(names):
            axes[i, j + 1].imshow(img, cmap="gray" if img.ndim == 2 else None)
            axes[i, j + 1].imshow(cams[name][i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if i == 0:
                axes[i, j + 1].set_title(name.replace(": ", "\n"), fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"Grad-CAM of {layer}, averaged over the time steps", fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def figure_firing_rates(rates: dict[str, dict[str, float]], path: Path) -> Path:
    names = list(rates)
    layers = list(next(iter(rates.values())))
    width = 0.8 / len(names)
    fig, ax = subplots(figsize=(max(5.0, 0.5 * len(layers) + 2), 3.2))
    for j, name in enumerate(names):
        ax.bar(np.arange(len(layers)) + j * width, [rates[name].get(l, np.nan) for l in layers], width, label=name)
    ax.set_xticks(np.arange(len(layers)) + 0.4 - width / 2, layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("firing rate")
    ax.legend(fontsize=8)
    ax.set_title("firing rate per neuron layer", fontsize=9)
    return save(fig, path)


def figure_sa_gates(gates: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """``gates[model][layer]``: ``[T, 2]`` mean history and input gates per step."""
    names = list(gates)
    fig, axes = subplots(len(names), 2, figsize=(8, 0.35 * max(len(g) for g in gates.values()) * len(names) + 1.5),
                             squeeze=False)
    for i, name in enumerate(names):
        layers = list(gates[name])
        table = np.stack([gates[name][l] for l in layers])  # [L, T, 2]
        for k, what in enumerate(("history gate g_h (on M V[t-1])", "input gate g_u (on N X^[t])")):
            ax = axes[i, k]
            im = ax.imshow(table[:, :, k], aspect="auto", cmap="viridis")
            ax.set_yticks(range(len(layers)), layers, fontsize=7)
            ax.set_xticks(range(table.shape[1]), [str(t + 1) for t in range(table.shape[1])], fontsize=7)
            ax.set_xlabel("step", fontsize=8)
            ax.set_title(f"{name}: {what}", fontsize=8)
            fig.colorbar(im, ax=ax)
    return save(fig, path)


def figure_pe_mn(model_params: dict[str, dict[str, dict[str, np.ndarray]]], path: Path) -> Path:
    """``model_params[model][layer]``: ``pe`` ``[T]`` (mean over channels, or
    absent), ``m`` and ``n`` (values over channels)."""
    names = list(model_params)
    fig, axes = subplots(len(names), 2, figsize=(10, 3.2 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        layers = list(model_params[name])
        pe = [model_params[name][l].get("pe") for l in layers]
        ax = axes[i, 0]
        if any(p is not None for p in pe):
            table = np.stack([p if p is not None else np.full(len(next(q for q in pe if q is not None)), np.nan)
                              for p in pe])
            im = ax.imshow(table, aspect="auto", cmap="coolwarm")
            ax.set_yticks(range(len(layers)), layers, fontsize=7)
            ax.set_xticks(range(table.shape[1]), [str(t + 1) for t in range(table.shape[1])], fontsize=7)
            ax.set_xlabel("step", fontsize=8)
            fig.colorbar(im, ax=ax)
            ax.set_title(f"{name}: PE, mean over channels", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no PE", ha="center", va="center")
            ax.axis("off")
        ax = axes[i, 1]
        pos = np.arange(len(layers))
        for k, (key, color) in enumerate((("m", "#4c72b0"), ("n", "#dd8452"))):
            vals = [model_params[name][l][key] for l in layers]
            ax.boxplot(vals, positions=pos + (k - 0.5) * 0.35, widths=0.3, patch_artist=True,
                       boxprops={"facecolor": color}, showfliers=False)
        ax.set_xticks(pos, layers, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{name}: M (blue) and N (orange) over channels", fontsize=8)
    return save(fig, path)


def _neurons(model: nn.Module) -> dict[str, nn.Module]:
    return {name: model.get_submodule(name).neuron for name in neuron_slots(model)}


def learned_parameters(model: nn.Module) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name, neuron in _neurons(model).items():
        entry = {}
        m, n = getattr(neuron, "m", None), getattr(neuron, "n", None)
        if m is None:  # plain LIF: fixed decay
            continue
        entry["m"] = m.detach().float().flatten().numpy()
        entry["n"] = n.detach().float().flatten().numpy()
        pe = getattr(neuron, "pe", None) or getattr(neuron, "pe_membrane", None)
        if pe is not None:
            p = pe.p.detach().float()
            entry["pe"] = p.reshape(p.shape[0], -1).mean(1).numpy()
        out[name] = entry
    return out


def sa_gate_table(model: nn.Module) -> dict[str, np.ndarray]:
    """Mean SA gates ``[T, 2]`` per layer from the last forward (STAA with SA only)."""
    out = {}
    for name, neuron in _neurons(model).items():
        g = recorded(neuron, "last_sa_gates")
        if g is not None:
            out[name] = g.detach().float().mean(dim=(1, 3)).numpy()  # [T, B, 2, C] -> [T, 2]
    return out


def visualize(models: dict[str, nn.Module], inputs: torch.Tensor, labels: torch.Tensor, out: str | Path,
              layer: str | None = None) -> list[Path]:
    """Write the four figures for one or more models on the same inputs; returns the files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(models.values()))
    layer = layer or default_cam_layer(first, inputs)
    files = []
    rates, gates, params = {}, {}, {}
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            model(inputs)
        rates[name] = firing_rates(model)
        if sa := sa_gate_table(model):
            gates[name] = sa
        if lp := learned_parameters(model):
            params[name] = lp
    cams = {name: gradcam(model, inputs, layer, targets=labels.tolist()) for name, model in models.items()}
    files.append(figure_gradcam(inputs, labels, cams, layer, out / "gradcam.png"))
    files.append(figure_firing_rates(rates, out / "firing_rates.png"))
    if gates:
        files.append(figure_sa_gates(gates, out / "sa_gates.png"))
    if params:
        files.append(figure_pe_mn(params, out / "pe_mn.png"))
    return files
