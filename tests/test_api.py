"""The Python training API: a model and data of your own through the same trainer, callbacks, resume."""

import csv
import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import staa_snn
from staa_snn.neurons import LIF
from staa_snn.training import load_config, train


class Blobs(Dataset):
    """Two Gaussian blobs in 16 dimensions, a map-style dataset of (x, label)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.randn(n, 16, generator=g) + 1.5 * (2 * self.y[:, None] - 1).float()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


class TinySNN(nn.Module):
    """A model of the test's own: a spiking MLP over T = 3 steps, per-step logits [T, B, K]."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.lif, self.fc2 = nn.Linear(16, 32), LIF(), nn.Linear(32, 2)

    def forward(self, x):
        current = self.fc1(x).unsqueeze(0).expand(3, *x.shape[:1], 32)
        return self.fc2(self.lif(current))


def config(tmp_path, *overrides):
    return load_config("digits", ["data.batch_size=16", "train.epochs=3", "train.progress=false",
                                  "optim.lr=0.01", f"output.dir={tmp_path}", "output.name=own", *overrides])


def test_own_model_and_data_train_log_and_resume_exactly(tmp_path):
    records = []
    torch.manual_seed(7)  # a model of your own comes with its own initial weights
    straight = train(config(tmp_path / "a"), model=TinySNN(), train_set=Blobs(96, 0), test_set=Blobs(40, 1),
                     callbacks=[records.append])
    assert [r["epoch"] for r in records] == [1, 2, 3] and records == straight.history
    assert straight.final["test_acc"] > 0.85 and len(straight.final["test_acc_per_step"]) == 3
    assert list(straight.final["firing_rates"]) == ["lif"] and 0 < straight.final["firing_rates"]["lif"] < 1
    rows = list(csv.DictReader(open(tmp_path / "a" / "own" / "metrics.csv")))
    assert [float(r["test_acc"]) for r in rows] == [r["test_acc"] for r in records]
    assert float(rows[-1]["firing_rates/lif"]) == pytest.approx(records[-1]["firing_rates"]["lif"])
    assert json.loads((tmp_path / "a" / "own" / "meta.json").read_text())["model"] == "test_api.TinySNN"

    torch.manual_seed(7)
    first = train(config(tmp_path / "b"), model=TinySNN(), train_set=Blobs(96, 0), test_set=Blobs(40, 1),
                  stop_after=1)
    assert len(first.history) == 1
    resumed = train(config(tmp_path / "b"), model=TinySNN(), train_set=Blobs(96, 0), test_set=Blobs(40, 1),
                    resume="auto")
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_config_by_bundled_name_or_path_and_errors(tmp_path):
    assert load_config("digits").model.name == "vgg_small"
    assert staa_snn.load_config("cifar100_resnet20_t4_mpbn", require_root=False).model.neuron_options == {
        "neuron_preset": "mpbn"}
    with pytest.raises(ValueError, match="give both train_set and test_set"):
        train(config(tmp_path), train_set=Blobs(8, 0))


def test_top_level_exports():
    """Each top-level name is the object of the module that defines it, and the version is pyproject's."""
    import re
    from pathlib import Path

    from staa_snn import analysis, data, models, neurons, training

    for module, names in ((models, ("create_model", "list_models", "list_pretrained", "fold_mpbn")),
                          (data, ("get_dataset", "list_datasets")),
                          (training, ("train", "load_config", "Config", "evaluate_checkpoint", "load_pretrained")),
                          (analysis, ("profile_model", "plot_runs")), (neurons, ("LIF", "AdaptiveLIF", "STAALIF"))):
        for name in names:
            assert getattr(staa_snn, name) is getattr(module, name), name
    assert sorted(staa_snn.__all__) == sorted(["__version__", "create_model", "list_models", "load_pretrained",
                                               "list_pretrained",
                                               "fold_mpbn", "get_dataset", "list_datasets", "train", "load_config",
                                               "Config", "evaluate_checkpoint", "profile_model", "plot_runs", "LIF",
                                               "AdaptiveLIF", "STAALIF"])
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    assert staa_snn.__version__ == re.search(r'^version = "(.+)"$', pyproject.read_text(), re.M).group(1)
    with pytest.raises(AttributeError, match="has no attribute 'create_modle'"):
        staa_snn.create_modle  # noqa: B018
