"""The ``staa-snn`` command line: ``train``, ``eval``, ``predict``, ``profile``, ``ablate``, ``visualize``,
``plot``, ``export``, ``configs``.

Also runs as ``python -m staa_snn.cli`` (the form ``torchrun`` needs). Bad input
gets one line on stderr and exit code 2 (a traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

from . import __version__

DEFAULT_CONFIG = "digits"

TRAIN_EPILOG = """\
overrides are section.key=value pairs applied after the config file, e.g.
  staa-snn train --config cifar100_resnet20_t4 data.root=/data/cifar optim.lr=0.05 model.tsrd_p=0
sections: data, model (with every neuron option: tsrd_p, gc_ratio, pe, ...), optim, train, output.
Multi-GPU / multi-node: torchrun --nproc_per_node=N -m staa_snn.cli train ...
"""


def bundled_configs() -> list[str]:
    """Names of the bundled configs (``_<dataset>.yaml`` recipe bases excluded)."""
    from .training.config import bundled_configs as names

    return names()


def describe_configs() -> str:
    """One line per bundled config: its name and the first sentence of its header comment."""
    from .training.config import CONFIG_DIR

    names = bundled_configs()
    width = max(map(len, names))
    lines = []
    for name in names:
        comment = []
        for line in (CONFIG_DIR / f"{name}.yaml").read_text().splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("# ").strip())
        text = " ".join(comment)
        first = text.split(". ")[0].split(": ", 1)[-1] if text else ""
        lines.append(f"{name:<{width}}  {first.rstrip('.')}")
    return "\n".join(lines)


def resolve_config(spec: str | None) -> Path:
    """A YAML path, or the name of a bundled config (``staa-snn configs``)."""
    from .training.config import resolve_config as resolve

    return resolve(spec, default=DEFAULT_CONFIG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staa-snn",
        description="STAA-SNN: spiking neural networks with a spatial-temporal attention aggregator.",
    )
    parser.add_argument("--version", action="version", version=f"staa-snn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command",
                                metavar="{train,eval,predict,profile,ablate,visualize,plot,export,configs}")

    tr = sub.add_parser("train", help="train a model (default: the bundled digits config)",
                        description="Train an SNN from a config. With no arguments: a small STAA-SNN on "
                                    "scikit-learn's digits (the bundled default), printing its test accuracy.",
                        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--config", "-c", help=f"YAML file or bundled config name (default: {DEFAULT_CONFIG})")
    tr.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    tr.add_argument("--resume", metavar="PATH|auto",
                    help="continue from a checkpoint (its config, then the overrides); auto: the run folder's "
                         "last.pt, or a fresh start when there is none yet")
    tr.add_argument("--stop-after", type=int, metavar="N",
                    help="train at most N epochs in this invocation, then stop (checkpointed; --resume later)")
    tr.add_argument("--print-config", action="store_true",
                    help="print the resolved config (the file, then the overrides) as YAML and exit")

    ev = sub.add_parser("eval", help="evaluate a checkpoint or exported weights on the test set",
                        description="Test loss, accuracy, and accuracy when reading out after 1..T steps, of a "
                                    "checkpoint or of exported weights (a shipped name, an "
                                    "export folder, hf://owner/name), on the test split of their dataset.",
                        epilog="e.g. staa-snn eval --weights my-export data.root=/data/cifar10 "
                               "(a folder with test/<class>/ or val/<class>/)")
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a last.pt / best.pt written by staa-snn train")
    source.add_argument("--weights", help="exported weights: a shipped name (staa_snn.list_pretrained()), an export "
                                          "folder or hf://owner/name")
    ev.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides (e.g. data.root=DIR)")
    ev.add_argument("--data-root", help="dataset folder, if not the one the checkpoint was trained on")
    ev.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    ev.add_argument("--batch-size", type=int, help="test batch size")
    ev.add_argument("--json", metavar="PATH", help="where to write the JSON (default: <checkpoint>.eval.json, e.g. "
                                                  "best.pt.eval.json; <weights name>.eval.json)")
    ev.add_argument("--exit", metavar="confidence:P", type=_exit_spec,
                    help="also run the net step by step and let each sample stop at the first step where its "
                         "softmax (of the logits averaged so far) reaches P: accuracy, mean steps and mean "
                         "energy (e.g. --exit confidence:0.9)")
    ev.add_argument("--exit-sweep", metavar="P,P,...", nargs="?", const=",".join(map(str, EXIT_SWEEP)),
                    type=_thresholds, help="early exit at many thresholds (default "
                    f"{','.join(map(str, EXIT_SWEEP))}) from one pass: the curve of accuracy against mean steps and "
                    "energy, in the JSON and drawn into <JSON>.exit.png")

    sub.add_parser("configs", help="list the bundled configs (one per result row of the paper)")

    pr = sub.add_parser("profile", help="parameters, dense MACs, #AC / #MAC, energy and firing rates",
                        description="Count the operations of one forward pass per sample, summed over the T steps: "
                                    "dense MACs, #AC (conv/linear whose input comes from a spiking neuron, weighted "
                                    "by its firing rate), #MAC (on real-valued inputs, average-pooled spikes "
                                    "included), energy = e_ac x #AC + e_mac x #MAC, and the firing rate of every "
                                    "neuron layer. MPBN's BN_mp is folded into thresholds first. Input: test "
                                    "batches of the config's dataset, or --random.")
    _model_source(pr)
    pr.add_argument("--batches", type=int, default=1, help="number of test batches to average over (default 1)")
    pr.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    pr.add_argument("--random", action="store_true",
                    help="a random input of the dataset's shape instead of data (counts are exact, firing rates "
                         "are those of noise); no data.root needed")
    pr.add_argument("--e-ac", type=float, default=0.9, help="energy per accumulate, pJ (default 0.9, 45 nm)")
    pr.add_argument("--e-mac", type=float, default=4.6, help="energy per multiply-accumulate, pJ (default 4.6)")
    pr.add_argument("--json", metavar="PATH", help="also write the report as JSON ('-': JSON to stdout, no table)")
    pr.add_argument("--no-layers", action="store_true", help="omit the per-layer rows of the table")

    ab = sub.add_parser("ablate", help="the paper's ablations as resumable training sweeps",
                        description="Train every row of an ablation grid once per seed (runs already finished are "
                                    "read back, interrupted ones resume), then write results.md (mean +- std over "
                                    "seeds, after all steps and after the first, difference to the baseline row, "
                                    "minutes per run), results.json and a plot. Grids: table4 (LIF and GC / PE / "
                                    "SA / TSRD, Table 4), tsrd_p, gc_ratio, pe_position, pe_kind, T (LIF and "
                                    "STAA-LIF at T = 1, 2, 4), block_lr (the blocks' LR scale).")
    ab.add_argument("--config", "-c", help=f"YAML file or bundled config name (default: {DEFAULT_CONFIG})")
    ab.add_argument("--grid", choices=["table4", "tsrd_p", "gc_ratio", "pe_position", "pe_kind", "T", "block_lr"],
                    help="the grid to run (required, except with --gather / --status)")
    ab.add_argument("--rows", metavar="LABEL,...",
                    help="run these rows only, e.g. --rows LIF,baseline (default: every row; a grid may be run in "
                         "parts into the same --out)")
    ab.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    ab.add_argument("--epochs", type=int, help="epochs per run (required, except with --gather / --status)")
    ab.add_argument("--launcher", choices=["local", "submitit-local", "slurm"], default="local",
                    help="local: here, one run after another (default); submitit-local: submitit jobs on this "
                         "machine, waited for; slurm: one SLURM job array through submitit, returns at once")
    ab.add_argument("--partition", help="--launcher slurm: the partition")
    ab.add_argument("--gpus-per-run", type=int, default=1, help="GPUs per run on SLURM, DDP when > 1 (default 1; submitit-local: processes per run, "
                         "one per GPU, or gloo DDP on the CPU)")
    ab.add_argument("--time",
                    help="the time limit per job (SLURM format, default 24:00:00); a run checkpoints before it and "
                         "is requeued")
    ab.add_argument("--account", help="--launcher slurm: the account to charge")
    ab.add_argument("--slurm", action="append", metavar="KEY=VALUE",
                    help="--launcher slurm: any other sbatch option, e.g. --slurm qos=high --slurm constraint=a100")
    ab.add_argument("--gather", metavar="DIR",
                    help="read a launched grid back (its folder, or the --out above it), write the table and name "
                         "the runs pending, failed (with their log's tail) or missing")
    ab.add_argument("--status", metavar="DIR", help="print the state of each run of a launched grid; write nothing")
    ab.add_argument("--out", default="runs/ablate", help="output folder (default runs/ablate; <out>/<grid>/...)")
    ab.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides for every run")

    vi = sub.add_parser("visualize", help="Grad-CAM, firing rates, SA gates, learned PE and M, N as PNG",
                        description="Figures for one or more checkpoints on the same test inputs: Grad-CAM of a "
                                    "neuron layer's spike maps averaged over the time steps (side by side), firing "
                                    "rate per layer, SA gates per step and layer, learned PE and M, N per layer. "
                                    'Grad-CAM needs pip install -e ".[viz]" (in the repository).')
    vi.add_argument("--checkpoint", action="append", required=True,
                    help="a checkpoint written by staa-snn train; repeat to compare (e.g. LIF vs STAA)")
    vi.add_argument("--layer", help="neuron slot for Grad-CAM, e.g. features.12 (default: the last spatial one)")
    vi.add_argument("--samples", type=int, default=6, help="test samples to show (default 6)")
    vi.add_argument("--data-root", help="dataset folder, if not the one the checkpoints were trained on")
    vi.add_argument("--out", default="figures", help="output folder (default figures/)")

    pl = sub.add_parser("plot", help="training curves of one or more runs, overlaid, as PNG",
                        description="Loss and accuracy per epoch (train dashed, evaluation split solid), the "
                                    "evaluation accuracy when reading out after 1..T steps, and the mean firing "
                                    "rate per epoch, from each run folder's metrics.jsonl; several runs overlaid "
                                    "with their names. The evaluation split is named as the run's config.yaml "
                                    "says: validation (data.options.val_per_class) or test.")
    pl.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by staa-snn train")
    pl.add_argument("--out", help="the PNG to write (default: <run>/curves.png for one run, curves.png for several)")

    ex = sub.add_parser("export", help="a trained net as ONNX, NIR or safetensors weights with a model card",
                        description="onnx: the eval-mode net (MPBN folded, TSRD off), batch size free. nir: LIF and "
                                    "adaptive-LIF nets as a NIR graph (conv with BN folded, avg-pool, linear, LIF "
                                    "with its leak, threshold and reset; STAA-LIF has no NIR primitive). "
                                    "safetensors: a folder with model.safetensors, config.json and README.md (a "
                                    "model card), loaded by staa_snn.models.load_pretrained; --push-to-hub "
                                    "uploads it to the Hugging Face Hub (pip install -e \".[hub]\"; a token from "
                                    "huggingface-cli login or HF_TOKEN). Needs pip install "
                                    '-e ".[export]".')
    ex.add_argument("--checkpoint", required=True, help="a best.pt / last.pt written by staa-snn train")
    ex.add_argument("--format", required=True, choices=["onnx", "nir", "safetensors"])
    ex.add_argument("--out", required=True, help="the file (onnx, nir) or folder (safetensors) to write")
    ex.add_argument("--step", action="store_true",
                    help="onnx: export one step (net.step) with each neuron layer's membrane potential as an input "
                         "and an output, for frames fed as they arrive (the metadata names the state tensors)")
    ex.add_argument("--profile-batches", type=int, default=2,
                    help="safetensors: test batches the model card's energy figures are measured on (default 2)")
    ex.add_argument("--push-to-hub", metavar="OWNER/NAME",
                    help="safetensors: then upload the folder to this Hugging Face Hub model repository (created "
                         "if missing); load it back with load_pretrained('hf://OWNER/NAME')")
    ex.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    pd = sub.add_parser("predict", help="class names and probabilities for images or event recordings",
                        description="Run a trained net on files: images (for nets trained on images) or whole event "
                                    "recordings (.aedat, .npz; for nets trained on event data, integrated into T "
                                    "frames), prepared as its test data were (size, normalisation), and print the "
                                    "most probable classes with their probabilities.")
    which = pd.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a checkpoint written by staa-snn train")
    which.add_argument("--weights", help="exported weights: a shipped name, an export folder or hf://owner/name")
    pd.add_argument("files", nargs="+", metavar="FILE", help="images or recordings")
    pd.add_argument("--top", type=int, default=3, help="classes to show per file (default 3)")
    pd.add_argument("--json", metavar="PATH", help="also write the predictions as JSON ('-': JSON to stdout only)")
    st = sub.add_parser("stream", help="feed an event recording to a net frame by frame, printing each step's prediction",
                        description="Integrate a recording (.aedat 2.0 / 3.1, .npz) into frames as its events arrive "
                                    "and feed them to the net one step at a time (net.step): after each step, the "
                                    "prediction of the logits so far, its probability and the step's latency.")
    where = st.add_mutually_exclusive_group(required=True)
    where.add_argument("--checkpoint", help="a checkpoint written by staa-snn train (a net trained on event frames)")
    where.add_argument("--weights", help="exported weights: a shipped name, an export folder or hf://owner/name")
    st.add_argument("recording", help="an event recording: .aedat (2.0 or 3.1) or SpikingJelly's .npz")
    st.add_argument("--split-by", choices=("time", "number"), default="time",
                    help="time (default): T equal time windows, each integrated when it closes; number: equal "
                         "event counts, the frames of predict and of training")
    st.add_argument("--json", metavar="PATH", help="also write the steps as JSON ('-': JSON to stdout only)")
    for command in sub.choices.values():  # --debug after the command too (SUPPRESS: it keeps the one before)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the full traceback of an error")
    return parser


def _model_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="YAML file or bundled config name (a freshly initialised model)")
    p.add_argument("--checkpoint", help="a checkpoint written by staa-snn train (the trained model and its config)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides (e.g. data.root=...)")


def _train(args) -> int:
    import yaml

    from .training import checkpoint_config, load_checkpoint, load_config, train
    from .training.config import split_name

    cfg = load_config(resolve_config(args.config), args.overrides, require_root=not args.print_config)
    path = None
    if args.resume == "auto":
        last = Path(cfg.output.dir) / cfg.run_name / "last.pt"
        path = last if last.is_file() else None
    elif args.resume is not None:
        path = Path(args.resume)
    if path is not None:  # the run's own config, then the overrides
        cfg = checkpoint_config(load_checkpoint(path), args.overrides, require_root=not args.print_config)
    if args.print_config:
        import torch

        from .data import dataset_info
        from .training import build_model

        with torch.device("meta"):  # the neuron options' values checked as train checks them, computing nothing
            build_model(cfg, num_classes=dataset_info(cfg.data.name).num_classes or 2)
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    result = train(cfg, resume=path if path is not None else args.resume, stop_after=args.stop_after)
    if result.history and _is_main():
        last, best = result.final, result.best
        print(f"{split_name(cfg)[0]} {last['test_acc']:.2%} after epoch {last['epoch']}/{cfg.train.epochs} "
              f"(best {best['test_acc']:.2%} at epoch {best['epoch']}); run folder: {result.run_dir}")
    return 0


def _is_main() -> bool:
    return os.environ.get("RANK", "0") == "0"


def format_eval(r: dict) -> str:
    steps = range(1, len(r["acc_per_step"]) + 1)
    lines = [f"{r['checkpoint']} (epoch {r['epoch']}): {r['dataset']}, {r['model']}, neuron={r['neuron']}, T={r['T']}",
             f"{r.get('split', 'test accuracy').replace(' accuracy', '')}: loss {r['loss']:.4f}, accuracy {r['acc']:.2%} "
             f"on {r['samples']} samples",
             "read out after t steps:",
             "  t   " + "".join(f"{t:>8}" for t in steps),
             "  acc " + "".join(f"{a:>8.2%}" for a in r["acc_per_step"])]
    return "\n".join(lines)


EXIT_SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected thresholds in (0, 1] separated by commas, got {text!r}")
    return values


def _exit_spec(text: str) -> float:
    kind, _, value = text.partition(":")
    try:
        p = float(value)
    except ValueError:
        p = math.nan
    if kind != "confidence" or not 0 < p <= 1:
        raise argparse.ArgumentTypeError(f"expected confidence:P with one P in (0, 1], e.g. confidence:0.9; got {text!r}")
    return p


def format_exit(curve: dict, T: int, single: float | None) -> str:
    """The early-exit figures: the fixed readouts and each threshold's accuracy, steps and energy."""
    lines = [f"early exit ({curve['samples']} samples; energy per sample at 0.9 pJ AC, 4.6 pJ MAC):",
             f"  {'exit':<20}{'accuracy':>9}{'mean steps':>12}{'energy (uJ)':>13}"]
    rows = [(f"after {t + 1} step{'s' if t else ''}", p) for t, p in enumerate(curve["fixed"])]
    rows += [(f"confidence >= {p['threshold']:g}", p) for p in curve["confidence"]
             if single is None or p["threshold"] == single]
    lines += [f"  {name:<20}{p['acc']:>9.2%}{p['mean_steps']:>9.2f}/{T:<2}{1e3 * p['mean_energy_mj']:>13.3f}"
              for name, p in rows]
    return "\n".join(lines)


def _eval(args) -> int:
    from .training import ConfigError, evaluate_checkpoint, evaluate_weights
    from .training.distributed import resolve_device

    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        resolve_device(args.device)
    except ConfigError:
        raise ConfigError(f"--device {args.device!r} is not a device here: use auto, cpu, cuda or cuda:N "
                          f"(cuda only where CUDA is available)") from None
    overrides = [*args.overrides, *([f"data.root={json.dumps(args.data_root)}"] if args.data_root else [])]
    thresholds = sorted({*(args.exit_sweep or ()), *([args.exit] if args.exit is not None else [])})
    if args.weights is not None:
        result = evaluate_weights(args.weights, overrides, device=args.device, batch_size=args.batch_size,
                                  exit_thresholds=thresholds)
    else:
        result = evaluate_checkpoint(args.checkpoint, overrides=overrides, device=args.device,
                                     batch_size=args.batch_size, exit_thresholds=thresholds)
    print(format_eval(result))
    if thresholds:
        print(format_exit(result["exit_curve"], result["T"], None if args.exit_sweep else args.exit))
    if args.json:
        out = Path(args.json)
    elif args.checkpoint:
        out = Path(args.checkpoint).with_name(Path(args.checkpoint).name + ".eval.json")
    else:
        out = Path(f"{Path(str(args.weights)).name or 'weights'}.eval.json")
    _write_json(str(out), result)
    print(f"JSON: {out}")
    if args.exit_sweep:
        from .analysis.plot import plot_exit_curves

        name = f"{result['model']} {result['neuron']} T={result['T']}"
        png = plot_exit_curves({name: result["exit_curve"]}, out.with_name(out.name + ".exit.png")).path
        print(f"plot: {png}")
    return 0


def _stream(args) -> int:
    from .inference import RECORDINGS, load_net, stream_recording
    from .training import ConfigError

    if not Path(args.recording).is_file():
        raise FileNotFoundError(f"no such file: {args.recording}")
    if not str(args.recording).endswith(RECORDINGS):
        raise ConfigError(f"{args.recording}: expected an event recording ({', '.join(RECORDINGS)})")
    net = load_net(args.checkpoint or args.weights)
    steps = []
    try:
        for s in stream_recording(net, args.recording, split_by=args.split_by):
            steps.append(s)
            if args.json != "-":
                window = "no events" if s["events"] == 0 else \
                    f"{s['events']:>7} events, t {s['t_start_us']}-{s['t_end_us']} us"
                print(f"step {s['step']}/{net.T}: {window} -> {s['class']} ({s['confidence']:.1%}), "
                      f"{s['latency_ms']:.1f} ms", flush=True)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if args.json:
        payload = {"recording": str(args.recording), "split_by": args.split_by, "steps": steps}
        if args.json == "-":
            print(json.dumps(payload, indent=1))
        else:
            _write_json(args.json, payload)
    return 0


def _predict(args) -> int:
    from .inference import load_net, predict_files
    from .training import ConfigError

    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    net = load_net(args.checkpoint or args.weights)
    try:
        results = predict_files(net, args.files, top=args.top)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if args.json == "-":
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        print(f"{r['file']}: " + ", ".join(f"{name} {p:.1%}" for name, p in r["predictions"]))
    if args.json:
        _write_json(args.json, results)
    return 0


def _write_json(path: str, payload: dict) -> None:
    from ._io import write_text_atomic

    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")


def _profile(args) -> int:
    from .analysis import profile_model
    from .analysis.loading import dataset_batches, model_from, random_batch
    from .models import fold_mpbn
    from .training import ConfigError

    if args.config is not None and args.checkpoint is not None:
        raise ConfigError("give --config or --checkpoint, not both")
    config = resolve_config(args.config) if args.checkpoint is None else None
    cfg, model, _ = model_from(config, args.overrides, args.checkpoint, require_root=not args.random)
    fold_mpbn(model)  # count the net as it would be deployed: MPBN's BN_mp as per-channel thresholds
    if args.batches < 1 or args.batch_size < 1:
        raise ConfigError(f"--batches and --batch-size must be >= 1, got {args.batches}, {args.batch_size}")
    inputs = [random_batch(cfg, args.batch_size)] if args.random else \
        dataset_batches(cfg, args.batches, args.batch_size)[0]
    report = profile_model(model, inputs, e_ac_pj=args.e_ac, e_mac_pj=args.e_mac)
    payload = {"config": cfg.to_dict(), "checkpoint": args.checkpoint, "input": "random" if args.random else
               f"{report.samples} test samples", **report.to_dict()}
    if args.json == "-":
        print(json.dumps(payload, indent=1))
        return 0
    source = args.checkpoint or f"{cfg.model.name}, neuron={cfg.model.neuron}, T={cfg.model.T} (untrained)"
    print(f"{source} on {payload['input']} of {cfg.data.name}")
    print(report.table(layers=not args.no_layers))
    if args.json:
        _write_json(args.json, payload)
        print(f"JSON: {args.json}")
    return 0


def _ablate(args, argv: list[str]) -> int:
    from .analysis.ablate import command_line, describe_states, gather, run_grid, select_rows, status, to_markdown
    from .analysis.launch import DEFAULT_TIME, SlurmOptions
    from .training import ConfigError, load_config

    if args.gather and args.status:
        raise ConfigError("give --gather DIR or --status DIR, not both")
    if args.gather or args.status:  # a launched grid, read back: 0 when every run has finished, else 1
        if args.gather:
            summary, states = gather(args.gather, args.grid)
            if summary is not None:
                print(to_markdown(summary))
        else:
            states = status(args.status, args.grid)
        print(describe_states(states, every=bool(args.status)), file=sys.stderr)
        return 0 if all(s["state"] == "done" for s in states.values()) else 1
    for flag, value in (("--grid", args.grid), ("--epochs", args.epochs)):
        if value is None:
            raise ConfigError(f"{flag} is required (except with --gather DIR or --status DIR)")
    for flag, value in (("--seeds", args.seeds), ("--epochs", args.epochs)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    cluster_only = [f for f, v in (("--partition", args.partition), ("--account", args.account),
                                   ("--slurm", args.slurm)) if v]
    if args.launcher != "slurm" and cluster_only:
        raise ConfigError(f"{', '.join(cluster_only)} apply to --launcher slurm (this is --launcher {args.launcher})")
    if args.launcher == "local" and (args.time is not None or args.gpus_per_run != 1):
        raise ConfigError("--time and --gpus-per-run apply to --launcher submitit-local or slurm (this is "
                          "--launcher local, which trains here, one run after another)")
    base = load_config(resolve_config(args.config), args.overrides)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows is not None else None
    if rows == []:
        raise ConfigError(f"--rows: no row labels in {args.rows!r} (e.g. --rows LIF,baseline)")
    try:
        select_rows(args.grid, rows)
    except ValueError as e:
        raise ConfigError(f"--rows: {e}") from None
    slurm = SlurmOptions(partition=args.partition, gpus_per_run=args.gpus_per_run, time=args.time or DEFAULT_TIME,
                         account=args.account, extra=SlurmOptions.parse_extra(args.slurm))
    summary = run_grid(base, args.grid, seeds=args.seeds, epochs=args.epochs, out=args.out,
                       command=command_line(argv), rows=rows, launcher=args.launcher, slurm=slurm)
    if summary is not None:
        print(to_markdown(summary))
        print(f"written: {Path(args.out) / args.grid}/results.md, results.json, {args.grid}.png")
    if args.launcher == "submitit-local":  # it waited: 1 when a run failed (named above, with its log)
        return 0 if all(s["state"] == "done" for s in status(Path(args.out) / args.grid).values()) else 1
    return 0


def _visualize(args) -> int:
    from .training import ConfigError

    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        raise ConfigError('staa-snn visualize needs Grad-CAM: pip install -e ".[viz]" (in the repository)') from None
    from .analysis.loading import dataset_batches, model_from
    from .analysis.visualize import visualize

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
        from .analysis.visualize import check_cam_layer, neuron_slots

        for path, model in zip(args.checkpoint, models.values()):
            try:
                check_cam_layer(model, args.layer)
            except ValueError:
                raise ConfigError(f"--layer {args.layer}: no such neuron layer in {path}; its neuron layers: "
                                  f"{', '.join(neuron_slots(model))}") from None
    files = visualize(models, xs[0], ys[0], args.out, layer=args.layer)
    print("\n".join(str(f) for f in files))
    return 0


def _plot(args) -> int:
    from .analysis.plot import plot_runs

    out = Path(args.out) if args.out else (Path(args.runs[0]) / "curves.png" if len(args.runs) == 1
                                           else Path("curves.png"))
    plot_runs(args.runs, out)
    print(out)
    return 0


def _export(args) -> int:
    from .export import export_checkpoint
    from .training import ConfigError

    if args.profile_batches < 1:
        raise ConfigError(f"--profile-batches must be >= 1, got {args.profile_batches}")
    if args.push_to_hub is not None or args.private:  # checked before the export's work
        from .models.pretrained import hub_repo, huggingface_hub

        if args.push_to_hub is None:
            raise ConfigError("--private goes with --push-to-hub OWNER/NAME")
        if args.format != "safetensors":
            raise ConfigError(f"--push-to-hub uploads safetensors weights, not {args.format}: use --format safetensors")
        try:
            hub_repo(args.push_to_hub, revision=False)
        except ValueError:
            raise ConfigError(f"--push-to-hub takes a Hub model repository OWNER/NAME (e.g. me/digits-staa), "
                              f"got {args.push_to_hub!r}") from None
        try:
            huggingface_hub()
        except ImportError as e:
            raise ConfigError(str(e)) from None
    try:
        if args.step and args.format != "onnx":
            raise ConfigError(f"--step exports an ONNX step graph: use --format onnx (not {args.format})")
        written = export_checkpoint(args.checkpoint, args.format, args.out, profile_batches=args.profile_batches,
                                    step=args.step)
    except ImportError as e:
        raise ConfigError(str(e)) from None
    print(written)
    if args.push_to_hub is not None:
        from .export import push_to_hub

        try:
            print(push_to_hub(written, args.push_to_hub, private=args.private))
        except Exception as e:  # the network, the token, the repository: the export itself is done
            raise RuntimeError(f"uploading to {args.push_to_hub} failed ({type(e).__name__}: {e}); the export is in "
                               f"{written}: upload it with staa_snn.export.push_to_hub") from e
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come before and after options (train optim.lr=0.01 --resume auto train.epochs=9):
    # argparse stops a positional list at the first option, so the rest arrives as "unknown".
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        elif hasattr(args, "files") and not any(e.startswith("-") for e in extra):  # predict a.png --top 2 b.png
            args.files = [*args.files, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "configs":
        print(describe_configs())
        return 0
    from ._malloc import tune_cpu_allocator
    from .data import CorruptFileError
    from .export.nir_graph import NIRExportError
    from .training import ConfigError, RunFolderError, TrainingDiverged, TrainingPreempted

    tune_cpu_allocator()  # CPU tensors reuse freed memory instead of fresh pages (glibc; see staa_snn._malloc)

    handlers = {"train": _train, "eval": _eval, "profile": _profile,
                "ablate": lambda a: _ablate(a, sys.argv[1:] if argv is None else list(argv)),
                "visualize": _visualize, "plot": _plot, "export": _export, "predict": _predict, "stream": _stream}
    name = f"staa-snn {args.command}"
    format_warning = warnings.formatwarning
    if not args.debug:  # warnings as one line each, without the source line that raised them
        warnings.formatwarning = lambda message, category, *_: f"staa-snn: warning: {_one_line(message)}\n"
    try:
        return handlers[args.command](args)
    except BrokenPipeError:  # the reader went away (staa-snn profile --json - | head): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain either
        return 0
    except (ConfigError, FileNotFoundError, FileExistsError, CorruptFileError, RunFolderError,
            NotADirectoryError, PermissionError, NIRExportError) as e:
        if args.debug:
            raise
        print(f"{name}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        if args.debug:
            raise
        print(f"{name}: stopped: {e}", file=sys.stderr)
        return 3
    except TrainingPreempted as e:  # SIGTERM / SIGUSR1: checkpointed where it stood
        print(f"{name}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        hint = {"train": " (the last complete checkpoint is kept: continue with --resume auto)",
                "ablate": " (finished runs are kept: run the same command again to continue)"}.get(args.command, "")
        print(f"{name}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as e:  # not a known kind of bad input: one line, and how to see more
        if args.debug:
            raise
        print(f"{name}: error: {type(e).__name__}: {_one_line(e)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = format_warning


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
