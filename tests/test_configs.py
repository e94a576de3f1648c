"""Every bundled config (one per paper row, plus LIF baselines) parses, builds and trains a step
on a tiny format-exact fixture of its dataset."""

import numpy as np
import pytest

from staa_snn import cli
from staa_snn.data import writers
from staa_snn.data.dvs import CIFAR10DVS_CLASSES
from staa_snn.training import load_config, train

ROWS = [c for c in cli.bundled_configs()
        if not c.endswith(("_lif", "_mpbn")) and not c.startswith(("digits", "nmnist")) and "_quick" not in c]
QUICK = ["cifar10_quick", "cifar10_quick_lif", "cifar10_quick_mpbn", "cifar10_quick_mpbn_lif"]
CIFAR_ROWS = [r for r in ROWS if r.startswith("cifar10_") or r.startswith("cifar100_")]
MPBN_READING = ["model.neuron_preset=mpbn", "model.init=mpbn", "optim.min_lr=0", "optim.warmup_epochs=0",
                "optim.label_smoothing=0", "optim.weight_decay_on=weights", "train.epochs=400", "train.seed=3407"]


def test_every_paper_row_has_a_config_and_a_lif_baseline():
    assert len(ROWS) == 21  # CIFAR-10/100 x (VGG-13 T 2,4; ResNet-19/20 T 1,2,4), ImageNet x 2, DVS x 3
    assert {f"{r}_lif" for r in ROWS} <= set(cli.bundled_configs())
    assert len(CIFAR_ROWS) == 16


@pytest.mark.parametrize("row", CIFAR_ROWS)
def test_every_cifar_row_has_its_mpbn_reading(row):
    """<row>_mpbn is the row with MPBN's neuron, initialisation and recipe; <row>_mpbn_lif is MPBN's own net."""
    placeholder = ["data.root=/placeholder"]
    mpbn = load_config(cli.resolve_config(f"{row}_mpbn"), placeholder)
    assert mpbn.to_dict() == load_config(cli.resolve_config(row), placeholder + MPBN_READING).to_dict()
    lif = load_config(cli.resolve_config(f"{row}_mpbn_lif"), placeholder)
    assert lif.to_dict() == load_config(cli.resolve_config(row), placeholder + MPBN_READING + ["model.neuron=lif"]
                                        ).to_dict()
    assert mpbn.run_name == f"{mpbn.data.name}_{mpbn.model.name}_staa_mpbn_t{mpbn.model.T}"  # beside the spec run


def write_fixture(name, root):
    rng = np.random.default_rng(0)
    if name in ("cifar10", "cifar100"):
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10" else ["train", "test"]
        writers.write_cifar(root, name, {f: rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8) for f in files},
                            {f: [0, 1] for f in files}, ["a", "b"])
    elif name == "imagenet":
        img = [rng.integers(0, 256, (36, 40, 3), dtype=np.uint8) for _ in range(2)]
        writers.write_image_folder(root, {s: {"n01": img, "n02": img} for s in ("train", "val")})
    elif name == "cifar10dvs":
        for cls in CIFAR10DVS_CLASSES:
            for i in range(2):
                ev = writers.random_events(rng, 200)
                writers.write_bytes(root / cls / f"cifar10_{cls}_{i}.aedat", writers.aedat2_bytes(**ev))
    elif name == "dvsgesture":
        recs = {n: (writers.random_events(rng, 500, duration=1000), [(1, 0, 500), (2, 500, 1000)])
                for n in ("user01_lab", "user24_led")}
        writers.write_gesture(root, recs, ["user01_lab"], ["user24_led"])
    return root


@pytest.mark.parametrize("row", ROWS + ["cifar10_vgg13_t2_mpbn", "cifar100_resnet20_t4_mpbn"])
def test_paper_config_trains_one_step(row, tmp_path):
    cfg = load_config(cli.resolve_config(row), ["data.root=/placeholder"])
    dataset = cfg.data.name
    assert row.startswith(dataset) and row.removesuffix("_mpbn").endswith(f"_t{cfg.model.T}")
    assert cfg.model.neuron == "staa"
    root = write_fixture(dataset, tmp_path / "data")
    overrides = [f"data.root={root}", "data.batch_size=2", "data.workers=0", "train.epochs=1", "train.max_batches=1",
                 "train.progress=false", "output.tensorboard=false", f"output.dir={tmp_path / 'runs'}",
                 f"data.cache_dir={tmp_path / 'cache'}"]
    if dataset != "cifar10" and dataset != "cifar100":
        overrides.append("data.size=32")  # small inputs keep the step fast
    if dataset in ("cifar10dvs", "dvsgesture"):
        overrides.append("data.options={workers: 1}")  # convert in-process
    result = train(load_config(cli.resolve_config(row), overrides))
    assert result.final["step"] == 1 and np.isfinite(result.final["train_loss"])
    lif = load_config(cli.resolve_config(f"{row}_lif"), ["data.root=/placeholder"])
    expected = load_config(cli.resolve_config(row), ["data.root=/placeholder", "model.neuron=lif"]).to_dict()
    assert lif.to_dict() == expected


def test_the_nmnist_recipes(tmp_path):
    """nmnist and nmnist_lif differ only in the neuron; as shipped (only data.root and the hold-out
    set) they train on the official layout, Train/<digit>/*.bin, and name the digits."""
    placeholder = ["data.root=/placeholder"]
    staa = load_config("nmnist", placeholder)
    assert (staa.data.name, staa.data.size, staa.data.split_by) == ("nmnist", 34, "number")
    assert (staa.model.name, staa.model.neuron, staa.model.T) == ("vgg_tiny", "staa", 8)
    assert staa.model.neuron_options == {"tsrd_p": 0}  # the paper's STAA-LIF but TSRD (docs/results/nmnist.md)
    lif = load_config("nmnist_lif", placeholder).to_dict()
    staa = staa.to_dict()
    assert lif["model"] == {**{k: v for k, v in staa["model"].items() if k != "tsrd_p"}, "neuron": "lif"}
    assert {k: v for k, v in lif.items() if k != "model"} == {k: v for k, v in staa.items() if k != "model"}
    rng = np.random.default_rng(0)
    for d in range(10):
        for i in range(2):
            ev = writers.random_events(rng, 60, sensor=34, duration=300_000)
            writers.write_bytes(tmp_path / "data" / "Train" / str(d) / f"{i}.bin", writers.nmnist_bytes(**ev))
    cfg = load_config("nmnist", [f"data.root={tmp_path / 'data'}", "data.options.val_per_class=1",
                                 "data.batch_size=5", "train.epochs=1", "train.max_batches=1", "train.progress=false", "output.tensorboard=false",
                                 f"output.dir={tmp_path / 'runs'}"])
    result = train(cfg)
    assert result.final["step"] == 1 and np.isfinite(result.final["train_loss"])
    assert result.model.classifier.out_features == 10
    from staa_snn.training.config import split_name

    assert split_name(cfg)[1] == "validation accuracy (1 recordings per class held out of the training recordings)"
    assert split_name(load_config("cifar10_quick", ["data.root=/placeholder", "data.options.val_per_class=5"]))[1] == (
        "validation accuracy (5 images per class held out of the training images)")


def test_full_tables_from_a_config_follow_the_data_size():
    from staa_snn.neurons import STAALIF
    from staa_snn.training.engine import build_model

    cfg = load_config("digits", ["model.pe_shape=full", "model.mn_shape=full", "data.size=16"])
    layers = [m for m in build_model(cfg).modules() if isinstance(m, STAALIF)]
    assert [m.spatial_shape for m in layers] == [(16, 16), (16, 16), (8, 8), (8, 8)]
    assert [tuple(m.pe.p.shape[-2:]) for m in layers] == [(16, 16), (16, 16), (8, 8), (8, 8)]


def test_yaml_reads_exponents_without_a_dot_as_floats(tmp_path):
    (tmp_path / "c.yaml").write_text("base: digits.yaml\noptim:\n  lr: 3e-4\n  weight_decay: 1E-2\n")
    import shutil

    from staa_snn.training.config import CONFIG_DIR

    shutil.copy(CONFIG_DIR / "digits.yaml", tmp_path / "digits.yaml")
    cfg = load_config(tmp_path / "c.yaml", ["optim.min_lr=1e-6", "output.name=1e3"])
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.min_lr) == (3e-4, 1e-2, 1e-6)
    assert cfg.output.name == "1e3"  # a text key keeps the text as typed


def test_the_quick_cifar10_recipes(tmp_path, capsys):
    """cifar10_quick and its three siblings differ only in the neuron; they read an image folder
    with the CIFAR recipe (crop and flip, no AutoAugment or Cutout) and train on a 2-class fixture
    whose validation split is held out of train/."""
    assert set(QUICK) <= set(cli.bundled_configs())
    placeholder = ["data.root=/placeholder"]
    staa = load_config("cifar10_quick", placeholder)
    assert (staa.data.name, staa.data.recipe, staa.data.autoaugment, staa.data.cutout) == ("imagefolder", "cifar",
                                                                                           False, 0)
    assert (staa.model.name, staa.model.neuron, staa.model.T) == ("vgg_quick", "staa", 2)
    assert staa.data.mean == (0.4914, 0.4822, 0.4465) and staa.data.std == (0.2470, 0.2435, 0.2616)
    readings = {"cifar10_quick_lif": ["model.neuron=lif"],
                "cifar10_quick_mpbn": ["model.neuron_preset=mpbn", "model.init=mpbn"],
                "cifar10_quick_mpbn_lif": ["model.neuron=lif", "model.neuron_preset=mpbn", "model.init=mpbn"]}
    for name, overrides in readings.items():
        assert load_config(name, placeholder).to_dict() == load_config("cifar10_quick", placeholder + overrides).to_dict()
    rng = np.random.default_rng(0)
    imgs = {c: [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(5)] for c in ("cat", "dog")}
    root = writers.write_image_folder(tmp_path / "data", {"train": imgs}, ext="png")
    from staa_snn.training import build_datasets, load_checkpoint

    cfg = load_config("cifar10_quick", [f"data.root={root}", "data.options.val_per_class=2", "data.batch_size=2",
                                        "train.epochs=1", "train.max_batches=1", "train.progress=false",
                                        "output.tensorboard=false", f"output.dir={tmp_path / 'runs'}"])
    held_in, held_out = build_datasets(cfg)
    assert (len(held_in), len(held_out)) == (6, 4)
    result = train(cfg)
    assert result.final["step"] == 1 and np.isfinite(result.final["train_loss"])
    capsys.readouterr()
    overrides = [f"data.root={root}", "data.options.val_per_class=2", "data.batch_size=2", "train.epochs=1",
                 "train.max_batches=1", "train.log_every=1", "output.tensorboard=false",
                 f"output.dir={tmp_path / 'cli'}"]
    assert cli.main(["train", "--config", "cifar10_quick", *overrides]) == 0
    printed = capsys.readouterr()  # a held-out split is named as such, never "test"
    assert "| validation loss " in printed.err and "| test loss" not in printed.err
    assert printed.out.startswith("validation accuracy ") and "test accuracy" not in printed.out

    ckpt = load_checkpoint(result.run_dir / "last.pt")
    assert ckpt["input"]["classes"] == ["cat", "dog"]
    assert ckpt["input"]["normalization"] == {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]}


@pytest.mark.parametrize("base, overrides, message", [
    ("cifar10_quick", ["data.recipe=fast"], r"data: unknown recipe 'fast'; valid recipes: auto, cifar, imagenet"),
    ("cifar10_quick", ["data.mean=[0.5, 0.5]"], r"data: mean must be 3 numbers, one per channel"),
    ("digits", ["data.autoaugment=true", "data.recipe=imagenet", "data.name=imagefolder"],
     r"data: autoaugment apply to the CIFAR recipe only; 'imagefolder' gets the imagenet recipe"),
])
def test_recipe_keys_are_checked_before_any_data_is_read(base, overrides, message):
    from staa_snn.training import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(base, [*overrides, "data.root=/nowhere"])
