"""Run by test_distributed.py under torchrun: train, then save this rank's weights and metrics."""

import json
import os
import sys

import torch

from staa_snn.training import load_config, train


def main() -> None:
    config, out, *overrides = sys.argv[1:]
    result = train(load_config(config, overrides))
    rank = int(os.environ["RANK"])
    torch.save(result.model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    with open(os.path.join(out, f"history{rank}.json"), "w") as f:
        json.dump(result.history, f)


if __name__ == "__main__":
    main()
