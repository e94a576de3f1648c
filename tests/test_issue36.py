"""What a new user still tripped over (issue 36), each pinned by a test that failed before its fix."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from staa_snn.training.loaders import EpochSampler, SeededSamples, collate_skipping
from staa_snn.training.distributed import GlobalBatchSampler


# -- 5: a Subset as the training set ---------------------------------------------------------------

def test_seeded_samples_over_a_subset_loads_the_subsets_samples():
    base = TensorDataset(torch.arange(10.0).view(10, 1), torch.arange(10))
    subset = Subset(base, [9, 7, 5, 3, 1])
    wrapped = SeededSamples(subset, seed=0)
    assert not hasattr(wrapped, "__getitems__")  # the DataLoader would hand Subset (epoch, index) keys
    assert wrapped.indices == [9, 7, 5, 3, 1]  # ordinary attributes still come through
    sampler = EpochSampler(GlobalBatchSampler(5, 5, shuffle=False, drop_last=False))
    (x, y, skipped), = list(DataLoader(wrapped, batch_size=5, sampler=sampler, collate_fn=collate_skipping))
    assert y.tolist() == [9, 7, 5, 3, 1] and x.view(-1).tolist() == [9.0, 7.0, 5.0, 3.0, 1.0] and skipped == 0


def test_train_takes_a_subset(tmp_path):
    from staa_snn.data import get_dataset
    from staa_snn.training import train
    from tiny_runs import tiny

    full = get_dataset("digits", split="train")
    test = Subset(get_dataset("digits", split="test"), range(40))
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    result = train(tiny(tmp_path, "train.epochs=1"), model=net, train_set=Subset(full, range(96)), test_set=test)
    assert result.history[0]["epoch"] == 1 and result.history[0]["step"] == 3


# -- 6: convert_neurons on LIF() built without channels= -----------------------------------------------

def test_convert_neurons_infers_channels_of_a_lif_without_channels():
    from staa_snn.models import convert_neurons
    from staa_snn.neurons import LIF

    net = convert_neurons(nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), LIF()), "staa", T=4)
    assert net[2].channels == 8
