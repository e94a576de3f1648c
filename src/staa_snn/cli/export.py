"""``staa-snn export``: a trained net as ONNX, NIR or safetensors weights with a model card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._io import is_stdout

NAME = "export"
HELP = "a trained net as ONNX, NIR or safetensors weights with a model card"
DESCRIPTION = ("onnx: the eval-mode net (MPBN folded, TSRD off), batch size free. nir: LIF and adaptive-LIF nets as "
               "a NIR graph (conv with BN folded, avg-pool, linear, LIF with its leak, threshold and reset; STAA-LIF "
               "has no NIR primitive). safetensors: a folder with model.safetensors, config.json and README.md (a "
               "model card), loaded by staa_snn.models.load_pretrained; --push-to-hub uploads it to the Hugging "
               "Face Hub (pip install -e \".[hub]\"; a token from huggingface-cli login or HF_TOKEN). onnx and nir "
               'need pip install -e ".[export]".')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a best.pt / last.pt written by staa-snn train")
    p.add_argument("--format", required=True, choices=["onnx", "nir", "safetensors"])
    p.add_argument("--out", required=True, help="the file (onnx, nir) or folder (safetensors) to write")
    p.add_argument("--card-note", metavar="TEXT|@FILE",
                   help="safetensors: markdown for the model card, under its first sentence, and config.json's "
                        "provenance (how the run was made, the machine...); a first line '# TITLE' is the card's title; "
                        "@FILE reads it from a file")
    p.add_argument("--step", action="store_true",
                   help="onnx: export one step (net.step) with each neuron layer's membrane potential as an input "
                        "and an output, for frames fed as they arrive (the metadata names the state tensors)")
    p.add_argument("--profile-batches", type=int, default=2,
                   help="safetensors: test batches the model card's energy figures are measured on (default 2)")
    p.add_argument("--push-to-hub", metavar="OWNER/NAME",
                   help="safetensors: then upload the folder to this Hugging Face Hub model repository (created "
                        "if missing); load it back with load_pretrained('hf://OWNER/NAME')")
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")


def run(args) -> int:
    from ..errors import ConfigError
    from ..export import export_checkpoint

    if args.profile_batches < 1:
        raise ConfigError(f"--profile-batches must be >= 1, got {args.profile_batches}")
    if args.push_to_hub is not None or args.private:  # checked before the export's work
        check_hub(args)
    try:
        if args.step and args.format != "onnx":
            raise ConfigError(f"--step exports an ONNX step graph: use --format onnx (not {args.format})")
        if args.card_note is not None and args.format != "safetensors":
            raise ConfigError(f"--card-note goes into the model card of safetensors weights: use --format "
                              f"safetensors (not {args.format})")
        written = export_checkpoint(args.checkpoint, args.format, args.out, profile_batches=args.profile_batches,
                                    step=args.step, card_note=card_note(args.card_note),
                                    command=["staa-snn", *args.argv])
    except ImportError as e:
        raise ConfigError(str(e)) from None
    print(written, file=sys.stderr if is_stdout(written) else sys.stdout)  # > net.onnx stays the ONNX alone
    if args.push_to_hub is not None:
        from ..export import push_to_hub

        try:
            print(push_to_hub(written, args.push_to_hub, private=args.private))
        except Exception as e:  # the network, the token, the repository: the export itself is done
            raise RuntimeError(f"uploading to {args.push_to_hub} failed ({type(e).__name__}: {e}); the export is in "
                               f"{written}: upload it with staa_snn.export.push_to_hub") from e
    return 0


def card_note(text: str | None) -> str | None:
    """``--card-note``: the text, or a file's with ``@FILE``."""
    from ..errors import ConfigError

    if text is None:
        return None
    if not text.startswith("@"):
        note = text
    else:
        try:
            note = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--card-note {text}: cannot read {text[1:]} ({type(e).__name__}: {e}); expected a "
                              f"UTF-8 markdown file, or the note itself without '@'") from None
    if not note.strip():
        raise ConfigError(f"--card-note {text!r}: the note is empty; expected markdown for the model card"
                          + (f" in {text[1:]}" if text.startswith("@") else ""))
    first = note.strip().splitlines()[0].strip()
    if first.startswith("#") and not first.strip("#").strip():
        raise ConfigError(f"--card-note {text!r}: its first line {first!r} is a heading without text; expected "
                          f"'# TITLE' (the card's title) or markdown")
    return note


def check_hub(args) -> None:
    """``--push-to-hub`` / ``--private``: a repository name, safetensors, huggingface_hub installed."""
    from ..errors import ConfigError
    from ..models.pretrained import hub_repo, huggingface_hub

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
