"""One typed config tree. Defaults are the paper's; every deviation is a named field.

Presets (alexnet/presets/*.toml) are small files that edit the defaults; command-line
overrides (`section.key=value`) are parsed against the field's type and checked.
"""
from __future__ import annotations

import dataclasses
import json
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


@dataclass
class ModelConfig:
    arch: Literal["paper", "owt", "cifar4"] = "paper"  # owt: torchvision's "one weird trick" net; cifar4: Figure 1's 4-layer net
    num_classes: int = 1000
    width: float = 1.0  # multiplies every layer's kernels/units; not in the paper, for small or CPU runs
    activation: Literal["relu", "tanh"] = "relu"  # §3.1, Figure 1
    lrn: bool = True  # §3.3
    lrn_alpha: float = 1e-4  # §3.3, as in the paper's formula
    lrn_alpha_per_n: bool = False  # 2012 code / Caffe: alpha is divided by n (effective paper alpha 2e-5)
    lrn_impl: Literal["auto", "reference", "fast", "triton"] = "auto"  # auto: the fused autograd LRN (nets/lrn.py)
    grouped_impl: Literal["grouped", "split"] = "grouped"  # how conv2/4/5's two columns are computed (nets/model.py)
    pool_kernel: int = 3  # §3.4 overlapping (z=3, s=2); 2 is the non-overlapping ablation
    columns: Literal[1, 2] = 2  # §3.2; 1 = one column with half the kernels (conv5 and FC full size)
    remove_conv: Literal[0, 3, 4] = 0  # §6: "removing any of the middle layers" (0 keeps all)
    extra_conv: bool = False  # §6: a sixth conv layer over the last pooling layer
    dropout: float = 0.5  # §4.2, on fc6 and fc7 outputs
    dropout_mode: Literal["paper", "inverted"] = "paper"  # §4.2 kept units unscaled, x(1-p) at test; inverted: torch's nn.Dropout (arch=paper)
    init: Literal["paper", "code2012", "kaiming"] = "paper"  # §5; code2012 uses std 0.03 in conv3-5
    init_bias: float = 1.0  # §5 bias of conv2, conv4, conv5, fc6, fc7 (Caffe used 0.1)
    input_scale: float = 1.0  # the net multiplies its input (0..255 pixels minus the mean, §2) by this; 1/58 for He init


@dataclass
class DataConfig:
    store: str = ""  # folder made by `alexnet prepare`
    size: int = 256  # §2 side S of the stored images, used when a command prepares the store itself
    train_split: str = "train"
    val_split: str = "val"
    crop: int = 224  # §4.1 random 224x224 patches of the 256x256 image
    flip: bool = True  # §4.1 horizontal reflections
    pca_std: float = 0.1  # §4.1 a_i ~ N(0, 0.1); 0 turns colour noise off
    pca_scale: Literal["std", "variance"] = "std"  # see augment.py: how eigenvalues scale the noise
    mean_image: bool = True  # §2 subtract the per-pixel training mean
    prefetch: int = 2  # batches read ahead by a background thread
    threads: int = 0  # threads decoding each batch on the CPU; 0: every usable core (at most 32)
    decode: Literal["cpu", "device"] = "cpu"  # jpeg stores: "device" decodes on the training device (nvJPEG on CUDA)


@dataclass
class OptimConfig:
    rule: Literal["paper", "torch"] = "paper"  # §5 v <- 0.9v - 0.0005*lr*w - lr*g; torch: torch.optim.SGD semantics
    lr: float = 0.01  # §5
    momentum: float = 0.9  # §5
    weight_decay: float = 5e-4  # §5
    batch_size: int = 128  # §5
    bias_lr_mult: float = 1.0  # 2012 code: 2.0
    bias_decay: bool = True  # 2012 code: False


@dataclass
class ScheduleConfig:
    factor: float = 0.1  # §5 "divide the learning rate by 10"
    patience: int = 5  # epochs without a new best validation error before a cut
    threshold: float = 0.0  # improvement (absolute, in error fraction) that counts as one
    max_cuts: int = 3  # §5 "reduced three times prior to termination"
    tail_epochs: int = 5  # epochs run after the last cut before stopping
    epochs: int = 90  # §5 "roughly 90 cycles"; hard budget


@dataclass
class TrainConfig:
    out: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"  # reduce-overhead: CUDA graphs
    deterministic: bool = False  # torch deterministic algorithms (bitwise-reproducible on CPU)
    ckpt_every_steps: int = 0  # 0: only at the end of each epoch
    log_every_steps: int = 20
    max_steps_per_epoch: int = 0  # 0: whole epoch; >0 truncates epochs (smoke tests)
    on_divergence: Literal["stop", "rollback"] = "stop"  # rollback: reload last good checkpoint, lr x0.1
    progress: bool = True
    dead_steps: int = 100  # stop when 99% of a layer's units get exactly zero gradient (ReLUs zero for the whole batch) at every log step for this many steps; 0: never (train/health.py)
    chance_steps: int = 5000  # stop when validation is at chance with the loss pinned at every epoch end over this many steps; > 3x the paper init's ~1500-step plateau (docs/paper.md "init"); 0: never
    threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default


@dataclass
class EvalConfig:
    views: Literal["center", "10crop"] = "10crop"  # §4.1 ten patches at test time (`alexnet eval`, quickstart)
    val_views: Literal["center", "10crop"] = "center"  # per-epoch validation the schedule watches: one view, 10x cheaper (the paper does not say)
    batch_size: int = 256


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _parse_value(text: str, typ: Any, key: str) -> Any:
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
    """Check a value from a TOML/JSON file against the field type (ints widen to floats)."""
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
    """Edit cfg in place with {section: {key: value}}, checking every key and type."""
    for sec_name, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: {sec_name!r} should be a [section] table")
        section = _section(cfg, sec_name, f"{origin}: {sec_name}")
        for name, value in values.items():
            key = f"{sec_name}.{name}"
            typ = _field_type(section, name, f"{origin}: {key}")
            setattr(section, name, _check_type(value, typ, f"{origin}: {key}"))
    return cfg


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply `section.key=value` strings (the CLI's --set)."""
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} should look like section.key=value, e.g. optim.lr=0.02")
        path, text = item.split("=", 1)
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


def validate(cfg: Config) -> Config:
    """Range checks that types cannot express. Raise ConfigError naming the key."""
    checks = [
        (cfg.model.num_classes >= 1, "model.num_classes must be >= 1"),
        (cfg.model.width > 0, "model.width must be > 0"),
        (0.0 <= cfg.model.dropout < 1.0, "model.dropout must be in [0, 1)"),
        (cfg.model.pool_kernel in (2, 3), "model.pool_kernel must be 3 (overlapping, §3.4) or 2"),
        (cfg.model.lrn_alpha > 0, "model.lrn_alpha must be > 0"),
        (cfg.model.input_scale > 0, "model.input_scale must be > 0"),
        (cfg.data.crop >= 1, "data.crop must be >= 1"),
        (cfg.data.size >= cfg.data.crop, "data.size must be >= data.crop"),
        (cfg.data.pca_std >= 0, "data.pca_std must be >= 0"),
        (cfg.data.prefetch >= 0, "data.prefetch must be >= 0"),
        (cfg.data.threads >= 0, "data.threads must be >= 0 (0: one per core)"),
        (cfg.optim.lr > 0, "optim.lr must be > 0"),
        (0 <= cfg.optim.momentum < 1, "optim.momentum must be in [0, 1)"),
        (cfg.optim.weight_decay >= 0, "optim.weight_decay must be >= 0"),
        (cfg.optim.batch_size >= 1, "optim.batch_size must be >= 1"),
        (cfg.optim.bias_lr_mult > 0, "optim.bias_lr_mult must be > 0"),
        (0 < cfg.schedule.factor < 1, "schedule.factor must be in (0, 1)"),
        (cfg.schedule.patience >= 1, "schedule.patience must be >= 1"),
        (cfg.schedule.max_cuts >= 0, "schedule.max_cuts must be >= 0"),
        (cfg.schedule.tail_epochs >= 0, "schedule.tail_epochs must be >= 0"),
        (cfg.schedule.epochs >= 1, "schedule.epochs must be >= 1"),
        (cfg.train.ckpt_every_steps >= 0, "train.ckpt_every_steps must be >= 0"),
        (cfg.train.log_every_steps >= 1, "train.log_every_steps must be >= 1"),
        (cfg.train.max_steps_per_epoch >= 0, "train.max_steps_per_epoch must be >= 0"),
        (cfg.train.threads >= 0, "train.threads must be >= 0"),
        (cfg.train.dead_steps >= 0, "train.dead_steps must be >= 0 (0: never stop a dead run)"),
        (cfg.train.chance_steps >= 0, "train.chance_steps must be >= 0 (0: never stop a run at chance)"),
        (cfg.eval.batch_size >= 1, "eval.batch_size must be >= 1"),
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
SAVED_BEFORE = {("model", "dropout_mode"): "inverted"}  # before it, the net used torch's nn.Dropout


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
