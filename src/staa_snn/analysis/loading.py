"""A model and inputs for the analysis commands, from a config or a checkpoint."""

from __future__ import annotations

import itertools

import torch
from torch.utils.data import DataLoader

from ..data import dataset_info
from ..training import Config, build_datasets, build_model, load_config, load_trained


def model_from(config=None, overrides=(), checkpoint=None, *, require_root: bool = True):
    """``(cfg, model, ckpt)``: a trained model from ``checkpoint`` (its config,
    then ``overrides``), or a freshly initialised one from ``config``."""
    if checkpoint is not None:
        return load_trained(checkpoint, overrides, require_root=require_root)
    cfg = load_config(config, overrides, require_root=require_root)
    with torch.random.fork_rng(devices=[]):  # the weights the seed gives, without touching the caller's stream
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg)
    return cfg, model.eval(), None


def random_batch(cfg: Config, batch_size: int, seed: int = 0) -> torch.Tensor:
    """A batch of the dataset's input shape with uniform random values (counts
    of operations do not depend on the values; firing rates do)."""
    info = dataset_info(cfg.data.name)
    size = cfg.data.input_size
    g = torch.Generator().manual_seed(seed)
    if info.kind == "events":
        return torch.rand(batch_size, cfg.model.T, info.in_channels, size, size, generator=g)
    return torch.rand(batch_size, info.in_channels, size, size, generator=g)


def dataset_batches(cfg: Config, batches: int, batch_size: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The first ``batches`` batches of the test split (no augmentation), with labels."""
    _, test = build_datasets(cfg, train=False)
    loader = DataLoader(test, batch_size=batch_size, shuffle=False)
    xs, ys = [], []
    for x, y in itertools.islice(loader, batches):
        xs.append(x)
        ys.append(y)
    return xs, ys
