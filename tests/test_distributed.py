"""DDP with 2 gloo processes on the CPU against one process at the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from staa_snn import cli
from staa_snn.training import load_config, train

JOB = Path(__file__).with_name("ddp_job.py")


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    # Deterministic data path (no augmentation, no TSRD) so both runs see the same numbers;
    # sync_bn: batch statistics over the global batch (GlobalBatchNorm on gloo).
    overrides = ["data.size=8", "model.T=2", "data.batch_size=32", "train.epochs=2", "train.max_batches=3",
                 "data.augment=false", "model.tsrd_p=0", "train.sync_bn=true", "train.device=cpu",
                 "train.progress=false", "output.tensorboard=false"]
    config = str(cli.resolve_config("digits"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(JOB), config,
           str(tmp_path), *overrides, f"output.dir={tmp_path / 'ddp'}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), f"ranks differ in {k}"
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir())  # rank 0 wrote the run folder
    runs = list((tmp_path / "ddp").iterdir())
    assert len(runs) == 1 and (runs[0] / "last.pt").is_file()

    single = train(load_config(config, [*overrides, f"output.dir={tmp_path / 'single'}"]))
    timing = {"train_samples_per_s", "epoch_time_s"}
    ddp_hist, other = ([{k: v for k, v in h.items() if k not in timing} for h in json.loads(
        (tmp_path / f"history{r}.json").read_text())] for r in range(2))
    assert other == ddp_hist  # metrics reduced across ranks
    for a, b in zip(ddp_hist, single.history, strict=True):
        for key in ("train_loss", "test_loss", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-4), key
        for key in ("train_acc", "test_acc"):  # a prediction on a knife-edge may flip
            assert a[key] == pytest.approx(b[key], abs=1.5 / 355), key
        assert a["step"] == b["step"]
    for k, v in single.model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(ranks[0][k], v, rtol=1e-3, atol=1e-4, msg=k)
