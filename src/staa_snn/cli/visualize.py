"""``staa-snn visualize``: Grad-CAM, firing rates, SA gates, learned PE and M, N as PNG."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import CHECKPOINT_HELP

NAME = "visualize"
HELP = "Grad-CAM, firing rates, SA gates, learned PE and M, N as PNG"
DESCRIPTION = ("Figures for one or more checkpoints on the same test inputs: Grad-CAM of a neuron layer's spike "
               "maps averaged over the time steps (side by side), firing rate per layer, SA gates per step and "
               "layer, learned PE and M, N per layer. "
               'Grad-CAM needs pip install -e ".[viz]" (in the repository).')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", action="append", required=True,
                   help=f"{CHECKPOINT_HELP}; repeat to compare (e.g. LIF vs STAA)")
    p.add_argument("--layer", help="neuron slot for Grad-CAM, e.g. features.12 (default: the last spatial one)")
    p.add_argument("--samples", type=int, default=6, help="test samples to show (default 6)")
    p.add_argument("--data-root", help="dataset folder, if not the one the checkpoints were trained on")
    p.add_argument("--out", default="figures", help="output folder (default figures/)")


def run(args) -> int:
    from ..errors import ConfigError

    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        raise ConfigError('staa-snn visualize needs Grad-CAM: pip install -e ".[viz]" (in the repository)') from None
    from ..analysis.loading import dataset_batches, model_from
    from ..analysis.visualize import visualize

    overrides = [f"data.root={json.dumps(args.data_root)}"] if args.data_root else []
    models, cfgs = {}, []
    for path in args.checkpoint:
        cfg, model, _ = model_from(None, overrides, path)
        name = f"{cfg.model.neuron}: {Path(path).parent.name}/{Path(path).name}"
        models[name] = model
        cfgs.append(cfg)
    if len({(c.data.name, c.model.T) for c in cfgs}) > 1:
        raise ConfigError("the checkpoints must share the dataset and T to be compared on the same inputs, got "
                          + ", ".join(f"{c.data.name} T={c.model.T}" for c in cfgs))
    if args.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {args.samples}")
    xs, ys = dataset_batches(cfgs[0], 1, args.samples)
    if args.layer is not None:
        check_layer(args.layer, args.checkpoint, models.values())
    files = visualize(models, xs[0], ys[0], args.out, layer=args.layer)
    print("\n".join(str(f) for f in files))
    return 0


def check_layer(layer: str, paths, models) -> None:
    """``--layer``: a neuron layer of every net, else a ConfigError naming the net's layers."""
    from ..analysis.visualize import check_cam_layer, neuron_slots
    from ..errors import ConfigError

    for path, model in zip(paths, models):
        try:
            check_cam_layer(model, layer)
        except ValueError:
            raise ConfigError(f"--layer {layer}: no such neuron layer in {path}; its neuron layers: "
                              f"{', '.join(neuron_slots(model))}") from None
