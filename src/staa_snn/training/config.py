"""Typed run configuration: YAML files plus ``section.key=value`` overrides.

A config has five sections -- ``data``, ``model``, ``optim``, ``train``,
``output`` -- each a dataclass whose fields are the valid keys. ``model``
also takes every option of its neuron kind (``tsrd_p``, ``gc_ratio``, ``tau``,
...), checked against the neuron's signature. A YAML file may start from
another with ``base: other.yaml`` (resolved relative to it) and change only
what differs. Everything is checked by :meth:`Config.validate` before any data
is read: unknown keys and invalid values name the key and what is valid.

:func:`load_config` takes a YAML path or the name of a bundled config
(``load_config("digits")``, ``load_config("cifar100_resnet20_t4_mpbn")``; the
names are :func:`bundled_configs`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data import SPLIT_MODES, check_dataset_options, dataset_info, list_datasets, resolve_recipe
from ..models import INIT_SCHEMES, NEURON_KINDS, list_models, neuron_options
from ..neurons.base import BACKENDS
from ..errors import ConfigError
from .losses import LOSSES  # optim.loss: the names of the one registry of losses
from .threads import check_threads

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
BACKEND_CHOICES = ("auto", *BACKENDS)


@dataclass
class DataConfig:
    name: str = "digits"
    root: str | None = None
    size: int | None = None  # output height = width; None: the dataset's default
    split_by: str = "number"  # event datasets: frames of equal event counts ("number") or durations ("time")
    augment: bool = True  # the recipe's training augmentation (test data is never augmented)
    recipe: str = "auto"  # image folders: auto (cifar for images of <= 64 px, else imagenet) | cifar | imagenet
    autoaugment: bool | None = None  # CIFAR recipe: AutoAugment (None: on)
    cutout: int | None = None  # CIFAR recipe: Cutout length (None: size // 2; 0: off)
    mean: tuple | None = None  # normalisation per channel (None: the dataset's; ImageNet's for image folders)
    std: tuple | None = None
    batch_size: int = 64  # global batch, split across DDP processes
    test_batch_size: int | None = None  # None: batch_size
    workers: int = 0  # DataLoader worker processes
    cache_dir: str | None = None  # event frames cache; None: <root>/frames_cache
    mixup: float = 0.0  # Mixup alpha (0: off)
    cutmix: float = 0.0  # CutMix alpha (0: off)
    mix_prob: float = 1.0  # probability of mixing a batch when mixup or cutmix is on
    options: dict = field(default_factory=dict)  # dataset-specific, e.g. {holdout: first, skip_bad_files: true}

    @property
    def input_size(self) -> int:
        """The input's height = width: ``size``, or the dataset's default when ``size`` is None."""
        return self.size or dataset_info(self.name).size


@dataclass
class ModelConfig:
    name: str = "vgg_small"
    neuron: str = "staa"
    T: int = 4
    init: str = "torch"  # torch: PyTorch's layer defaults | mpbn: the MPBN code's initialisation
    neuron_options: dict = field(default_factory=dict)  # written flat in YAML: model.tsrd_p, model.gc_ratio, ...


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1  # peak learning rate, for the global batch
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False
    betas: tuple = (0.9, 0.999)  # AdamW
    weight_decay: float = 1e-4
    weight_decay_on: str = "weights"  # weights: conv / linear weights only (the recipes) | all: every parameter
    block_lr_scale: float = 1.0  # LR of the STAA blocks' parameters (PE, GC, SA) = lr * this
    block_weight_decay: float | None = None  # weight decay of the blocks' decayed weights; None: optim.weight_decay
    schedule: str = "cosine"  # cosine | constant
    warmup_epochs: float = 0.0  # linear warm-up from 0, counted in epochs (fractions allowed)
    min_lr: float = 0.0  # end of the cosine
    label_smoothing: float = 0.0
    loss: str = "mean_logits"  # mean_logits: CE of the logits averaged over steps | tet: mean over steps of each step's CE
    grad_clip: float = 0.0  # max global gradient norm (0: off)


@dataclass
class TrainConfig:
    epochs: int = 10
    seed: int = 0
    device: str = "auto"  # auto (CUDA if present) | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 | fp16 (fp16: CUDA only, with a gradient scaler)
    sync_bn: bool = False  # DDP: batch statistics over the global batch
    memory: str = "auto"  # none: keep every activation for backward | checkpoint: recompute each neuron segment
    #                       there | auto: checkpoint when a step's activations exceed the budget
    memory_budget: float | None = None  # GiB of activations for memory=auto; None: half the device's free memory
    max_batches: int | None = None  # cap on training batches per epoch (quick checks); None: all
    progress: bool = True  # progress bars (rank 0)
    checkpoint_every: int | str | None = None  # also checkpoint mid-epoch: every N steps, or "30min"; None: off
    threads: int | str = "auto"  # torch's CPU threads: auto (the CPUs this process may use and others leave free) | N
    check_every: int = 50  # steps between reads of the running loss (NaN check, progress): host syncs
    log_every: int | None = None  # no terminal: a progress line every N steps (None: about every 30 s)


@dataclass
class OutputConfig:
    dir: str = "runs"
    name: str | None = None  # run folder under dir; None: <data>_<model>_<neuron>_t<T>
    tensorboard: bool | str = "auto"  # auto: when installed | true: required (warns if missing) | false


SECTIONS = {"data": DataConfig, "model": ModelConfig, "optim": OptimConfig, "train": TrainConfig,
            "output": OutputConfig}
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
DECAY_TARGETS = ("weights", "all")
AMP_MODES = ("none", "bf16", "fp16")
MEMORY_MODES = ("none", "checkpoint", "auto")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_dict(cls, tree: dict) -> Config:
        if not isinstance(tree, dict):
            raise ConfigError(f"a config is a mapping of sections {sorted(SECTIONS)}, got {type(tree).__name__}")
        unknown = sorted(set(tree) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown config section(s) {unknown}; valid sections: {sorted(SECTIONS)}")
        cfg = cls()
        for section, values in tree.items():
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigError(f"{section}: expected a mapping of keys, got {values!r}")
            for key, value in values.items():
                cfg.set(f"{section}.{key}", value)
        return cfg

    def to_dict(self) -> dict:
        out = {}
        for section in SECTIONS:
            d = dataclasses.asdict(getattr(self, section))
            if section == "model":
                d.update(d.pop("neuron_options"))
            if section == "optim":
                d["betas"] = list(d["betas"])
            if section == "data":
                d.update({k: list(d[k]) for k in ("mean", "std") if d[k] is not None})
            out[section] = d
        return out

    def set(self, dotted: str, value: Any, raw: str | None = None) -> None:
        """Set ``section.key`` to ``value``, checking the key and its type; ``raw``, the text the
        value was read from, is taken as it is for a text key (``output.name=1e3``)."""
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or not key:
            raise ConfigError(f"{dotted!r}: expected section.key with a section in {sorted(SECTIONS)}")
        obj = getattr(self, section)
        fields = {f.name: f for f in dataclasses.fields(obj)}
        if section == "model" and key not in fields:
            self.model.neuron_options[key] = value  # checked against the neuron in validate()
            return
        if section == "data" and key.startswith("options.") and len(key) > len("options."):
            self.data.options[key[len("options."):]] = value  # data.options.skip_bad_files=true
            return
        if key not in fields or (section == "model" and key == "neuron_options"):
            valid = sorted(k for k in fields if k != "neuron_options")
            extra = " (and the neuron's options, e.g. tsrd_p, gc_ratio)" if section == "model" else ""
            raise ConfigError(f"unknown key {dotted!r}; valid keys in {section}: {valid}{extra}")
        hint = typing.get_type_hints(type(obj))[key]
        try:
            setattr(obj, key, _coerce(dotted, value, hint))
        except ConfigError:
            allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
            if raw is None or value is None or str not in allowed or isinstance(value, (dict, list)):
                raise
            setattr(obj, key, raw.strip())

    # -- checks ---------------------------------------------------------------
    def validate(self, *, require_root: bool = True) -> Config:
        """Check every value; raise :class:`ConfigError` naming the first bad key.
        ``require_root=False``: a missing ``data.root`` is fine (nothing will be read)."""
        self._check_choices()
        self._check_numbers()
        self._check_settings()
        self._check_data_and_model(require_root)
        return self

    def _check_choices(self) -> None:
        """The values that name one of a list (datasets, models, neurons, optimisers, ...)."""
        d, m, o, t = self.data, self.model, self.optim, self.train
        if not str(d.name).startswith("tonic:"):  # tonic:<Name>: checked by dataset_info below
            _one_of("data.name", d.name, list_datasets())
        _one_of("model.name", m.name, list_models())
        _one_of("model.neuron", m.neuron, sorted(NEURON_KINDS))
        _one_of("model.init", m.init, INIT_SCHEMES)
        _one_of("data.split_by", d.split_by, SPLIT_MODES)
        _one_of("optim.name", o.name, OPTIMIZERS)
        _one_of("optim.schedule", o.schedule, SCHEDULES)
        _one_of("optim.loss", o.loss, LOSSES)
        _one_of("optim.weight_decay_on", o.weight_decay_on, DECAY_TARGETS)
        _one_of("train.amp", t.amp, AMP_MODES)
        _one_of("train.memory", t.memory, MEMORY_MODES)

    def _check_numbers(self) -> None:
        """Counts, sizes, rates and the optimiser's numbers, each in its range."""
        d, m, o, t = self.data, self.model, self.optim, self.train
        if t.memory_budget is not None and not t.memory_budget > 0:
            raise ConfigError(f"train.memory_budget must be > 0 GiB (or null: half the device's free memory), "
                              f"got {t.memory_budget}")
        for key, value in (("model.T", m.T), ("data.batch_size", d.batch_size), ("train.epochs", t.epochs),
                           ("train.check_every", t.check_every)):
            if value < 1:
                raise ConfigError(f"{key} must be >= 1, got {value}")
        for key, value in (("data.test_batch_size", d.test_batch_size), ("train.max_batches", t.max_batches),
                           ("train.log_every", t.log_every),
                           ("data.size", d.size)):
            if value is not None and value < 1:
                raise ConfigError(f"{key} must be >= 1 (or null), got {value}")
        for key, value in (("optim.lr", o.lr), ("optim.weight_decay", o.weight_decay), ("optim.min_lr", o.min_lr),
                           ("optim.block_lr_scale", o.block_lr_scale),
                           ("optim.block_weight_decay", 0 if o.block_weight_decay is None else o.block_weight_decay),
                           ("optim.warmup_epochs", o.warmup_epochs), ("optim.grad_clip", o.grad_clip),
                           ("data.mixup", d.mixup), ("data.cutmix", d.cutmix), ("data.workers", d.workers)):
            if value < 0:
                raise ConfigError(f"{key} must be >= 0, got {value}")
        if o.lr == 0:
            raise ConfigError("optim.lr must be > 0, got 0")
        if not 0 <= o.label_smoothing < 1:
            raise ConfigError(f"optim.label_smoothing must be in [0, 1), got {o.label_smoothing}")
        numbers = all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in o.betas)
        if not 0 <= o.momentum < 1 or len(o.betas) != 2 or not numbers or not all(0 <= b < 1 for b in o.betas):
            raise ConfigError(f"optim.momentum and optim.betas must lie in [0, 1), got {o.momentum}, {o.betas}")
        if not 0 <= d.mix_prob <= 1:
            raise ConfigError(f"data.mix_prob must be in [0, 1], got {d.mix_prob}")

    def _check_settings(self) -> None:
        """The device, the checkpoint interval, TensorBoard and the neuron backend."""
        m, t = self.model, self.train
        if t.device != "auto" and t.device != "cpu" and not t.device.startswith("cuda"):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {t.device!r}")
        checkpoint_interval(t.checkpoint_every)
        try:
            check_threads(t.threads)
        except ValueError as e:
            raise ConfigError(f"train.{e}") from None
        if self.output.tensorboard not in (True, False, "auto"):
            raise ConfigError(f"output.tensorboard must be auto, true or false, got {self.output.tensorboard!r}")
        backend = m.neuron_options.get("backend", "auto")
        if backend not in BACKEND_CHOICES:
            raise ConfigError(f"model.backend: unknown value {backend!r}; valid values: {', '.join(BACKEND_CHOICES)}")

    def _check_data_and_model(self, require_root: bool) -> None:
        """The dataset's recipe, options and folder; the neuron's options (known, ``tsrd_p`` in [0, 1])."""
        d, m = self.data, self.model
        try:  # the recipe's and the dataset's options, without reading the data
            resolve_recipe(d.name, recipe=d.recipe, autoaugment=d.autoaugment, cutout=d.cutout, mean=d.mean, std=d.std)
            check_dataset_options(d.name, d.options)
        except ValueError as e:
            raise ConfigError(f"data: {e}") from None
        try:
            info = dataset_info(d.name)
        except ValueError as e:
            raise ConfigError(f"data.name: {e}") from None
        if require_root and info.needs_root and not d.root:
            raise ConfigError(f"data.root is required for data.name={d.name!r}: the folder holding {info.layout}")
        valid = neuron_options(m.neuron)
        unknown = sorted(set(m.neuron_options) - set(valid))
        if unknown:
            raise ConfigError(f"unknown key(s) {['model.' + k for k in unknown]} for model.neuron={m.neuron!r}; "
                              f"valid keys in model: {['name', 'neuron', 'T', 'init']} and the neuron's options "
                              f"{sorted(valid)}")
        tsrd = m.neuron_options.get("tsrd_p")
        if tsrd is not None and not (isinstance(tsrd, (int, float)) and 0 <= tsrd <= 1):
            raise ConfigError(f"model.tsrd_p must be in [0, 1], got {tsrd!r}")

    def flat(self) -> dict[str, Any]:
        """``{"section.key": value}`` for every key (the neuron's options under ``model.``)."""
        return {f"{section}.{key}": value for section, values in self.to_dict().items() for key, value in values.items()}

    @property
    def run_name(self) -> str:
        """``output.name``, or ``<data>_<model>_<neuron>[_<preset>]_t<T>`` (the preset when not ``spec``)."""
        preset = self.model.neuron_options.get("neuron_preset", "spec")
        neuron = self.model.neuron if preset == "spec" else f"{self.model.neuron}_{preset}"
        data = self.data.name.replace(":", "-")  # tonic:NMNIST -> tonic-NMNIST, a portable folder name
        return self.output.name or f"{data}_{self.model.name}_{neuron}_t{self.model.T}"


def checkpoint_interval(value) -> tuple[str, float] | None:
    """``train.checkpoint_every`` as ``("steps", n)`` or ``("seconds", s)``; ``None`` when off.
    Accepts an int (steps) or a string ``"500"``, ``"500steps"``, ``"30min"``, ``"90s"``, ``"2h"``."""
    if value is None:
        return None
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(steps?|s|sec|min|m|h)?", text)
    if match is None or float(match.group(1)) <= 0 or isinstance(value, bool):
        raise ConfigError(f"train.checkpoint_every: expected a number of steps (e.g. 1000) or a duration "
                          f"(e.g. 30min, 90s, 2h), got {value!r}")
    number, unit = float(match.group(1)), match.group(2) or "steps"
    if unit.startswith("step"):
        if number != int(number):
            raise ConfigError(f"train.checkpoint_every: a number of steps must be whole, got {value!r}")
        return "steps", int(number)
    return "seconds", number * {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}[unit]


def bundled_configs() -> list[str]:
    """Names of the bundled configs (``_<dataset>.yaml`` recipe bases excluded)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def resolve_config(spec: str | Path | None, default: str = "digits") -> Path:
    """A YAML path, or the name of a bundled config (``None``: ``default``)."""
    spec = default if spec is None else spec
    path = Path(spec)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / f"{str(spec).removesuffix('.yaml')}.yaml"
    if bundled.is_file():
        return bundled
    if path.is_dir():
        raise ConfigError(f"config {spec!r} is a folder, not a YAML file")
    close = difflib.get_close_matches(Path(str(spec)).stem, bundled_configs(), n=3, cutoff=0.75)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ConfigError(f"config {spec!r} is neither a file nor a bundled config; {hint}"
                      f"staa-snn configs lists the {len(bundled_configs())} bundled ones")


def _one_of(key: str, value, valid) -> None:
    if value not in valid:
        raise ConfigError(f"{key}: unknown value {value!r}; valid values: {', '.join(map(str, valid))}")


def _coerce(key: str, value: Any, hint) -> Any:
    """Check ``value`` against a field's annotation (``int``, ``float | None``, ...)."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{key} cannot be null")
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if kind is dict and isinstance(value, dict):
            return dict(value)
        if kind is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
    names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
    raise ConfigError(f"{key}: expected {names}, got {value!r}")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, reading ``1e-3`` as a float: YAML 1.1 wants a dot in the
    mantissa (``1.0e-3``) and would hand ``1e-3`` over as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def safe_load(text: str):
    """YAML as ``yaml.safe_load`` reads it (no tags that build objects), with ``1e-3`` a float."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass


def apply_override(cfg: "Config", text: str) -> None:
    """Set one ``section.key=value`` override on ``cfg`` (checked as :meth:`Config.set` does)."""
    cfg.set(*parse_override(text), raw=text.partition("=")[2])


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=0.05"`` -> ``("optim.lr", 0.05)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. optim.lr=0.05")
    try:
        return key.strip(), safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({e})") from None


def _read_yaml(path: Path, seen: tuple = ()) -> dict:
    if path in seen:
        raise ConfigError(f"{path}: 'base:' chain loops back to itself")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        tree = safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(tree).__name__}")
    base = tree.pop("base", None)
    if base is None:
        return tree
    parent = _read_yaml(_base_path(path, base), (*seen, path))
    return _merge(parent, tree)


def _base_path(path: Path, base) -> Path:
    """``base:`` of ``path``: a file next to it, else a bundled config's name (``base: digits``,
    ``base: _cifar10``), else a ConfigError naming both places."""
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: 'base:' must name a YAML file or a bundled config, got {base!r}")
    beside = (path.parent / base).resolve()
    if beside.is_file():
        return beside
    bundled = CONFIG_DIR / f"{base.removesuffix('.yaml')}.yaml"
    if "/" not in base and bundled.is_file():
        return bundled
    raise ConfigError(f"{path}: 'base: {base}' is neither a file next to it ({beside}) nor a bundled config "
                      f"(staa-snn configs lists them)")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: list[str] = (), *, require_root: bool = True) -> Config:
    """Defaults, then the YAML file or bundled config (with its ``base:`` chain), then the
    overrides; validated."""
    if isinstance(overrides, str):
        raise ConfigError(f"overrides are a list of section.key=value strings, got one string {overrides!r}: "
                          f"write [{overrides!r}]")
    tree = _read_yaml(resolve_config(path).resolve()) if path is not None else {}
    cfg = Config.from_dict(tree)
    for text in overrides:
        apply_override(cfg, text)
    return cfg.validate(require_root=require_root)


def eval_split(options: dict) -> str:
    """The evaluation split's name for a run with these ``data.options``: ``"validation"`` for
    images held out of the training images (``val_per_class``), else ``"test"``."""
    return "validation" if (options or {}).get("val_per_class") else "test"


def samples_of(name: str) -> str:
    """What a dataset's samples are called in messages and cards: ``"recordings"`` for event data,
    else ``"images"`` (also for a name not registered)."""
    try:
        return "recordings" if dataset_info(name).kind == "events" else "images"
    except ValueError:
        return "images"


def split_name(cfg: Config) -> tuple[str, str]:
    """What the "test" numbers of a run are measured on: ``(short name, in full)``: the test split,
    or the images held out of the training images (``data.options.val_per_class``)."""
    held = cfg.data.options.get("val_per_class")
    if eval_split(cfg.data.options) == "validation":
        what = samples_of(cfg.data.name)
        return "validation accuracy", f"validation accuracy ({held} {what} per class held out of the training {what})"
    return "test accuracy", "test accuracy"
