"""One typed config tree. Defaults are the paper's; every deviation is a named field.

Presets (alexnet/presets/*.toml) are small files that edit the defaults; command-line
overrides (`section.key=value`) are parsed against the field's type and checked.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRESET_DIR = Path(__file__).parent / "presets"
_LAYER = r"(conv|fc)\d+"
LAYER_LIST = rf"(|{_LAYER}(\.\.{_LAYER})?(,{_LAYER}(\.\.{_LAYER})?)*)"  # finetune.freeze: "", conv1..conv5, conv1,fc6


def ranged(default: float | tuple, interval: str):
    """A number field (or tuple of numbers) and its allowed interval, e.g. ranged(0, "[0, inf)");
    validate() checks it (each number of a tuple)."""
    return field(default=default, metadata={"range": interval})


@dataclass
class ModelConfig:
    arch: Literal["paper", "owt", "cifar4", "cifar_local"] = "paper"  # owt: torchvision's "one weird trick" net; cifar4: Figure 1's 4-layer net
    # cifar_local: §3.3's conv + locally connected CIFAR-10 net (the LRN claim)
    num_classes: int = ranged(0, "[0, inf)")  # 0: the store's class count when one is read (train, finetune), else 1000 (ImageNet, §2)
    width: float = ranged(1.0, "(0, inf)")  # multiplies every layer's kernels/units; not in the paper, for small or CPU runs
    activation: Literal["relu", "tanh"] = "relu"  # §3.1, Figure 1
    lrn: bool = True  # §3.3
    lrn_alpha: float = ranged(1e-4, "(0, inf)")  # §3.3, as in the paper's formula
    lrn_alpha_per_n: bool = False  # 2012 code / Caffe: alpha is divided by n (effective paper alpha 2e-5)
    lrn_impl: Literal["auto", "reference", "fast", "triton"] = "auto"  # auto: the Triton op on CUDA, fused LRN on CPU (nets/lrn.py)
    grouped_impl: Literal["grouped", "split"] = "grouped"  # how conv2/4/5's two columns are computed (nets/model.py)
    pool_kernel: int = ranged(3, "[2, 3]")  # §3.4 overlapping (z=3, s=2); 2 is the non-overlapping ablation
    columns: Literal[1, 2] = 2  # §3.2; 1 = one column with half the kernels (conv5 and FC full size)
    remove_conv: Literal[0, 3, 4] = 0  # §6: "removing any of the middle layers" (0 keeps all)
    extra_conv: bool = False  # §6: a sixth conv layer over the last pooling layer
    dropout: float = ranged(0.5, "[0, 1)")  # §4.2, on fc6 and fc7 outputs
    dropout_mode: Literal["paper", "inverted"] = "paper"  # §4.2 kept units unscaled, x(1-p) at test; inverted: torch's nn.Dropout (arch=paper)
    init: Literal["paper", "code2012", "kaiming"] = "paper"  # §5; code2012 uses std 0.03 in conv3-5
    init_bias: float = ranged(1.0, "(-inf, inf)")  # §5 bias of conv2, conv4, conv5, fc6, fc7 (Caffe used 0.1)
    input_scale: float = ranged(1.0, "(0, inf)")  # the net multiplies its input (0..255 pixels minus the mean, §2) by this; 1/58 for He init


@dataclass
class DataConfig:
    store: str = ""  # folder made by `alexnet prepare`
    size: int = ranged(0, "[0, inf)")  # §2 side S of the stored images: 0 = the store's (256, §2, when a command prepares the store);
    # a fact of the store: a preset's value yields to the store's, the crop is checked against the store (train/parts.py)
    train_split: str = "train"
    val_split: str = "val"  # evaluated at the end (quickstart, `alexnet eval`); per epoch only when data.holdout=0
    # share of every class of the training split held out, the same images for every seed (data/subset.py):
    # the per-epoch validation (plateau schedule, health check, best.pt) runs on them and they are never
    # trained on, so data.val_split stays untouched until it is reported. The paper tuned on its
    # validation set and reported test (§6); 0: validate on data.val_split (selection on the reported split)
    holdout: float = ranged(0.02, "[0, 0.5]")
    crop: int = ranged(224, "[1, inf)")  # §4.1 random 224x224 patches of the 256x256 image
    flip: bool = True  # §4.1 horizontal reflections
    random_crop: bool = True  # §4.1 random patches; false: always the centre patch ("without this scheme": overfitting)
    pca_std: float = ranged(0.1, "[0, inf)")  # §4.1 a_i ~ N(0, 0.1); 0 turns colour noise off
    pca_scale: Literal["std", "variance"] = "std"  # see augment.py: how eigenvalues scale the noise
    mean_image: bool = True  # §2 subtract the per-pixel training mean


@dataclass
class OptimConfig:
    rule: Literal["paper", "torch"] = "paper"  # §5 v <- 0.9v - 0.0005*lr*w - lr*g; torch: torch.optim.SGD semantics
    lr: float = ranged(0.01, "(0, inf)")  # §5
    momentum: float = ranged(0.9, "[0, 1)")  # §5
    weight_decay: float = ranged(5e-4, "[0, inf)")  # §5
    batch_size: int = ranged(128, "[1, inf)")  # §5
    bias_lr_mult: float = ranged(1.0, "(0, inf)")  # 2012 code: 2.0
    bias_decay: bool = True  # 2012 code: False
    lars: bool = False  # large batch: layer-wise lr (LARS, You, Gitman & Ginsburg 2017, arXiv:1708.03888), weights only
    lars_eta: float = ranged(0.001, "(0, inf)")  # LARS trust coefficient eta (You et al. 2017)


@dataclass
class ScheduleConfig:
    # plateau: §5 (lr / 10 when validation error stops improving). linear / cosine: not the paper's,
    # for a fixed budget (time to accuracy, preset imagenette-fast): linear or cosine decay to 0 at the
    # end of `epochs`, as a function of the step
    # step: the paper's divisions by `factor` at fixed points, `max_cuts` of them spread evenly over the
    # budget (epochs x i / (max_cuts + 1): 22.5, 45, 67.5 of 90, near run 145's 25, 51, ~75)
    # cuts: the lr divided by `factor` at each of `cut_steps` (steps planned in advance: the experiments' phases)
    kind: Literal["plateau", "linear", "cosine", "step", "cuts"] = "plateau"
    factor: float = ranged(0.1, "(0, 1)")  # §5 "divide the learning rate by 10"
    patience: int = ranged(5, "[1, inf)")  # epochs without a new best validation error before a cut
    threshold: float = ranged(0.0, "[0, 1]")  # improvement (absolute, in error fraction) that counts as one
    max_cuts: int = ranged(3, "[0, inf)")  # §5 "reduced three times prior to termination"
    tail_epochs: int = ranged(5, "[0, inf)")  # epochs run after the last cut before stopping
    epochs: int = ranged(90, "[1, inf)")  # §5 "roughly 90 cycles"; hard budget
    warmup_epochs: float = ranged(0.0, "[0, inf)")  # not the paper's: lr ramps linearly up over these epochs (Goyal et al. 2017; You et al. 2017)
    cut_steps: tuple[int, ...] = ranged((), "[1, inf)")  # each; kind=cuts: the steps (0-based, ascending) from which the lr is divided once more


@dataclass
class TrainConfig:
    out: str = "runs/default"
    seed: int = ranged(0, "[0, 4294967295]")  # numpy's and torch's seeds are unsigned
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"  # reduce-overhead: CUDA graphs
    deterministic: bool = False  # torch deterministic algorithms (bitwise-reproducible on CPU)
    ckpt_every_steps: int = ranged(0, "[0, inf)")  # 0: only at the end of each epoch
    log_every_steps: int = ranged(20, "[1, inf)")
    on_divergence: Literal["stop", "rollback"] = "stop"  # rollback: reload last good checkpoint, lr x0.1
    progress: bool = True
    threads: int = ranged(0, "[0, 1024]")  # torch intra-op threads on CPU; 0 keeps torch's default
    val_every_epochs: int = ranged(1, "[0, inf)")  # validate every k epochs and after the last; 0: only after the last (§5 plateau needs 1)
    ckpt_every_epochs: int = ranged(1, "[0, inf)")  # last.pt every k epochs and after the last (and best.pt on a new best); 0: only after the last
    cudnn_benchmark: bool = False  # CUDA speed switch: cuDNN times its convolution algorithms for each new shape
    model_parallel: bool = False  # §3.2 each column on its own device: ranks 2r, 2r+1 hold replica r's columns


@dataclass
class LoaderConfig:
    """How training batches are read and decoded (data/loader.py): the same pixels whatever these are."""
    prefetch: int = ranged(2, "[0, inf)")  # batches read ahead by a background thread
    threads: int = ranged(0, "[0, 1024]")  # threads decoding each batch on the CPU; 0: every usable core (at most 32)
    decode: Literal["cpu", "device"] = "cpu"  # jpeg stores: "device" decodes on the training device (nvJPEG on CUDA)
    cpu_decoder: Literal["auto", "simplejpeg", "pillow"] = "auto"  # data/jpeg.py; same pixels, simplejpeg scales with threads
    device_share: float = ranged(1.0, "(0, 1]")  # decode=device: share of each batch decoded on the device, the rest on CPU threads at once
    backend: Literal["torchvision", "dali"] = "torchvision"  # decode=device: nvJPEG through torchvision, or NVIDIA DALI (alexnet[dali])
    max_batches: int = ranged(0, "[0, inf)")  # batches of each training epoch; 0: all, >0 truncates epochs (smoke tests)


@dataclass
class HealthConfig:
    """When a dead run stops (train/health.py)."""
    dead_steps: int = ranged(100, "[0, inf)")  # stop when 99% of a layer's units get exactly zero gradient (ReLUs zero for the whole batch) at every log step for this many steps; 0: never
    chance_steps: int = ranged(5000, "[0, inf)")  # stop when validation is at chance with the loss pinned at every epoch end over this many steps; > 3x the paper init's ~1500-step plateau (docs/paper.md "init"); 0: never


@dataclass
class DDPConfig:
    """torchrun data parallelism (train/distributed.py)."""
    bucket_mb: int = ranged(25, "[1, inf)")  # gradients all-reduce in buckets of this size during backward


@dataclass
class EvalConfig:
    views: Literal["center", "10crop"] = "10crop"  # §4.1 ten patches at test time (`alexnet eval`, quickstart)
    val_views: Literal["center", "10crop"] = "center"  # per-epoch validation the schedule watches: one view, 10x cheaper (the paper does not say)
    batch_size: int = ranged(256, "[1, inf)")


@dataclass
class FinetuneConfig:
    """§6 fine-tuning a trained net on other classes (`alexnet finetune` sets these)."""
    source: str = ""  # the trained model (checkpoint or weights file) whose layers start the run; "" = from scratch
    freeze: str = ""  # layers kept fixed, e.g. "conv1..conv5" or "conv1,conv2" (names: nets/layers.py)
    pretrained_lr_mult: float = ranged(0.1, "[0, inf)")  # pretrained layers learn at optim.lr x this, the new classifier at optim.lr (Caffe)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    ddp: DDPConfig = field(default_factory=DDPConfig)


_SECTIONS: dict[str, type] = get_type_hints(Config)  # section name -> its dataclass

# Keys moved to a section of their own (issue 27): the old spelling still works in --set, presets and saved configs
RENAMED = {"data.prefetch": "loader.prefetch", "data.threads": "loader.threads", "data.decode": "loader.decode",
           "data.cpu_decoder": "loader.cpu_decoder", "data.device_share": "loader.device_share",
           "data.backend": "loader.backend", "train.max_steps_per_epoch": "loader.max_batches",
           "train.dead_steps": "health.dead_steps", "train.chance_steps": "health.chance_steps",
           "train.ddp_bucket_mb": "ddp.bucket_mb"}


def current_key(key: str) -> str:
    """`key` as this version spells it (RENAMED)."""
    return RENAMED.get(key, key)


def choices(key: str) -> tuple:
    """The allowed values of a Literal field, e.g. choices("eval.views") (the CLI's choices come from here)."""
    section, name = current_key(key).split(".")
    return get_args(get_type_hints(_SECTIONS[section])[name])


def _parse_value(text: str, typ: Any, key: str) -> Any:
    if get_origin(typ) is tuple:  # tuple[int, ...]: "1000,2000" ("" is empty)
        return tuple(_parse_value(t.strip(), get_args(typ)[0], key) for t in text.split(",") if t.strip())
    if get_origin(typ) is Literal:
        choices = get_args(typ)
        for c in choices:
            if str(c) == text:
                return c
        raise ConfigError(f"{key}={text!r} is not one of {', '.join(map(str, choices))}")
    try:
        if typ is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        return typ(text)
    except ValueError:
        raise ConfigError(f"{key}={text!r} is not a valid {typ.__name__}") from None


def _check_type(value: Any, typ: Any, key: str) -> Any:
    """Check a value from a TOML/JSON file against the field type (ints widen to floats, lists become tuples)."""
    if get_origin(typ) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} should be a list")
        return tuple(_check_type(v, get_args(typ)[0], key) for v in value)
    if get_origin(typ) is Literal:
        if value not in get_args(typ):
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(str, get_args(typ)))}")
        return value
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is not bool and isinstance(value, bool) or not isinstance(value, typ):
        raise ConfigError(f"{key}={value!r} should be of type {typ.__name__}")
    return value


def _section(cfg: Config, name: str, key: str):
    if name not in {f.name for f in dataclasses.fields(cfg)}:
        sections = ", ".join(f.name for f in dataclasses.fields(cfg))
        raise ConfigError(f"unknown config section {name!r} in {key!r} (sections: {sections})")
    return getattr(cfg, name)


def _field_type(section, name: str, key: str):
    hints = get_type_hints(type(section))
    if name not in hints:
        known = ", ".join(hints)
        raise ConfigError(f"unknown config key {key!r} (keys of this section: {known})")
    return hints[name]


def apply_dict(cfg: Config, data: dict, origin: str) -> Config:
    """Edit cfg in place with {section: {key: value}}, checking every key and type (old spellings: RENAMED)."""
    for sec_name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: {sec_name!r} should be a [section] table")
        for name, value in values.items():
            key = current_key(f"{sec_name}.{name}")
            section = _section(cfg, key.split(".")[0], f"{origin}: {key}")
            typ = _field_type(section, key.split(".")[1], f"{origin}: {key}")
            setattr(section, key.split(".")[1], _check_type(value, typ, f"{origin}: {key}"))
    return cfg


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply `section.key=value` strings (the CLI's --set)."""
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} should look like section.key=value, e.g. optim.lr=0.02")
        path, text = item.split("=", 1)
        path = current_key(path)
        sec_name, name = path.split(".", 1)
        section = _section(cfg, sec_name, path)
        setattr(section, name, _parse_value(text, _field_type(section, name, path), path))
    return cfg


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_preset(name_or_path: str) -> dict:
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(f"no preset {name_or_path!r}: use one of {', '.join(preset_names())} or a .toml file path")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"preset {path} is not valid TOML: {e}") from None


# The allowed range of every int and float field, beside the field (`ranged`): an interval ("[" and "]"
# include the end, "(" and ")" exclude it; inf: unbounded). validate() checks them and that floats are
# finite (a config.json with Infinity is not JSON); tests/test_input.py sweeps a value outside each one
# through the CLI. A new int or float field is declared with ranged().
RANGES: dict[str, str] = {f"{sec.name}.{f.name}": f.metadata["range"]
                          for sec in dataclasses.fields(Config) for f in dataclasses.fields(_SECTIONS[sec.name])
                          if "range" in f.metadata}
NOT_EMPTY = ("data.train_split", "data.val_split", "train.out", "train.device")


def get_value(cfg: Config, key: str) -> Any:
    """The value of `section.name` in cfg."""
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


def range_problem(key: str, value: float, interval: str) -> str | None:
    """Why `value` is outside `interval` ("[1, inf)"), naming `key`; None when it is inside."""
    low, high = (float(x) for x in interval[1:-1].split(","))
    if not math.isfinite(value):
        return f"{key} must be a finite number (got {value})"
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    if above and below:
        return None
    if high == math.inf:
        return f"{key} must be {'>=' if interval[0] == '[' else '>'} {low:g} (got {value})"
    return f"{key} must be in {interval} (got {value})"


def check_section(name: str, section) -> None:
    """Raise ConfigError naming the first field of `section` (the section `name`) outside its
    choices (a Literal type) or its range (`ranged`); what validate() checks of every section."""
    hints = get_type_hints(type(section))
    for f in dataclasses.fields(section):
        key, value, typ = f"{name}.{f.name}", getattr(section, f.name), hints[f.name]
        if get_origin(typ) is Literal and value not in get_args(typ):
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(map(str, get_args(typ)))}")
        for v in (value if isinstance(value, tuple) else (value,)) if "range" in f.metadata else ():
            if problem := range_problem(key, v, f.metadata["range"]):
                raise ConfigError(problem)


def validate(cfg: Config) -> Config:
    """Range checks that types cannot express. Raise ConfigError naming the key."""
    for sec in dataclasses.fields(cfg):
        check_section(sec.name, getattr(cfg, sec.name))
    for key in NOT_EMPTY:
        if not get_value(cfg, key).strip():
            raise ConfigError(f"{key} must not be empty")
    cuts = cfg.schedule.cut_steps
    checks = [
        (all(a < b for a, b in zip((0, *cuts), cuts)), f"schedule.cut_steps={','.join(map(str, cuts))}: "
         "give ascending steps > 0, e.g. schedule.cut_steps=1000,2000"),
        (cfg.schedule.kind != "cuts" or cuts, "schedule.kind=cuts needs schedule.cut_steps, e.g. 1000,2000"),
        (cfg.schedule.warmup_epochs < cfg.schedule.epochs, "schedule.warmup_epochs must be < schedule.epochs"),
        (cfg.schedule.kind != "plateau" or cfg.train.val_every_epochs == 1,
         "schedule.kind=plateau reads the validation error of every epoch: set train.val_every_epochs=1, "
         "or use schedule.kind=linear|cosine|step"),
        (re.fullmatch(LAYER_LIST, cfg.finetune.freeze) is not None,
         f"finetune.freeze={cfg.finetune.freeze!r} should list layers like conv1..conv5 or conv1,conv2,fc6"),
        (not cfg.optim.lars or cfg.optim.rule == "paper", "optim.lars=true needs optim.rule=paper (LARS scales its update)"),
        (not cfg.train.model_parallel or (cfg.model.arch == "paper" and cfg.model.columns == 2
                                          and cfg.model.remove_conv == 0 and not cfg.model.extra_conv),
         "train.model_parallel=true places the paper net's two columns (§3.2) on two devices: it needs "
         "model.arch=paper, model.columns=2 and no remove_conv/extra_conv ablation"),
        (not (cfg.train.model_parallel and cfg.train.compile), "train.model_parallel=true does not support "
         "train.compile=true yet: turn one of them off"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return cfg


def build_config(preset: str | None = None, overrides: list[str] | None = None) -> Config:
    cfg = Config()
    if preset:
        apply_dict(cfg, load_preset(preset), f"preset {preset}")
    apply_overrides(cfg, overrides or [])
    return validate(cfg)


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


# Fields added after runs were saved with the earlier behaviour: a saved config without the field
# gets the value the code that saved it used (not today's default).
SAVED_BEFORE = {("model", "dropout_mode"): "inverted",  # before it, the net used torch's nn.Dropout
               ("data", "holdout"): 0.0}  # before it, runs validated on data.val_split


def with_saved_defaults(data: dict) -> dict:
    """A saved config with the fields it predates filled in as its code behaved (SAVED_BEFORE)."""
    data = {sec: dict(values) if isinstance(values, dict) else values for sec, values in data.items()}
    for (sec, name), value in SAVED_BEFORE.items():
        if isinstance(data.get(sec, {}), dict):
            data.setdefault(sec, {}).setdefault(name, value)
    return data


def from_dict(data: dict) -> Config:
    """Rebuild a Config saved with a run or checkpoint (keys unknown to this version are errors;
    fields it predates get the old behaviour, SAVED_BEFORE)."""
    return validate(apply_dict(Config(), with_saved_defaults(data), "saved config"))


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
