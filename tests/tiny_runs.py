"""Training runs on a tiny budget, shared by the trainer's tests: the bundled digits config at 8x8,
T = 2, a few batches per epoch."""

from staa_snn import cli
from staa_snn.training import load_config

DIGITS = cli.resolve_config("digits")
TIMING = {"train_samples_per_s", "epoch_time_s"}  # the record's fields that vary from run to run


def tiny(tmp_path, *overrides, name="run", batches=3):
    """The bundled digits config on a tiny budget: 8x8, T = 2, ``batches`` batches of 32 per epoch."""
    return load_config(DIGITS, ["data.size=8", "model.T=2", "data.batch_size=32", "train.epochs=2",
                                f"train.max_batches={batches}", "train.progress=false", "output.tensorboard=false",
                                f"output.dir={tmp_path}", f"output.name={name}", *overrides])


def strip(history):
    """Epoch records without their timings (what two runs of the same job share exactly)."""
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]
