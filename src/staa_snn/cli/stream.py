"""``staa-snn stream``: an event recording fed to a net frame by frame, each step's prediction."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import CHECKPOINT_HELP, add_json, add_net, add_sensor, check_json, emit_json

NAME = "stream"
HELP = "feed an event recording to a net frame by frame, printing each step's prediction"
DESCRIPTION = ("Integrate a recording (AEDAT 2.0/3.1/4.0, Prophesee .dat/.raw, "
               "N-MNIST .bin, .npz/.npy) into frames as its events arrive and feed them to "
               "the net one step at a time (net.step): after each step, the prediction of the logits so far, its "
               "probability and the step's latency.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_net(p, checkpoint=f"{CHECKPOINT_HELP} (a net trained on event frames)")
    p.add_argument("recording", help="an event recording: .aedat (2.0, 3.1), .aedat4, Prophesee .dat / .raw (EVT 2.0, 3.0), N-MNIST "
                                     ".bin, or .npz / .npy events")
    p.add_argument("--split-by", choices=("time", "number"), default="time",
                   help="time (default): T equal time windows, each integrated when it closes; number: equal "
                        "event counts, the frames of predict and of training")
    add_sensor(p)
    add_json(p, "also write the steps as JSON ('-': JSON to stdout only)")


def run(args) -> int:
    from ..errors import ConfigError
    from ..inference import RECORDINGS, load_net, stream_recording

    if Path(args.recording).is_dir():
        raise ConfigError(f"{args.recording} is a folder: stream takes one recording (predict takes folders)")
    if not Path(args.recording).is_file():
        raise FileNotFoundError(f"no such file: {args.recording}")
    if not str(args.recording).endswith(RECORDINGS):
        raise ConfigError(f"{args.recording}: expected an event recording ({', '.join(RECORDINGS)})")
    check_json(args.json)
    net = load_net(args.checkpoint, checkpoint=True) if args.checkpoint else load_net(args.weights)
    steps = []
    try:
        for s in stream_recording(net, args.recording, split_by=args.split_by, sensor=args.sensor):
            steps.append(s)
            if args.json != "-":
                window = "no events"
                if s["events"]:  # in ms from the recording's first event (a camera's clock may read 1.6e15 us)
                    t0 = next(step["t_start_us"] for step in steps if step["events"])
                    window = (f"{s['events']:>7} events at {(s['t_start_us'] - t0) / 1e3:.1f}-"
                              f"{(s['t_end_us'] - t0) / 1e3:.1f} ms")
                print(f"step {s['step']}/{net.T}: {window} -> {s['class']} ({s['confidence']:.1%}), "
                      f"{s['latency_ms']:.1f} ms", flush=True)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    emit_json(args.json, {"recording": str(args.recording), "split_by": args.split_by, "steps": steps})
    return 0
