"""The typed config tree: presets, checked overrides, range checks, round trips."""
import pytest

from alexnet.config import Config, build_config, from_dict, preset_names, to_dict
from alexnet.errors import ConfigError


def test_defaults_are_the_papers():
    c = Config()
    assert (c.optim.lr, c.optim.momentum, c.optim.weight_decay, c.optim.batch_size) == (0.01, 0.9, 5e-4, 128)
    assert (c.model.lrn_alpha, c.model.pool_kernel, c.model.columns, c.model.dropout) == (1e-4, 3, 2, 0.5)
    assert (c.data.crop, c.data.pca_std, c.schedule.max_cuts) == (224, 0.1, 3)
    # §2's S = 256 is the store's side: `alexnet prepare` makes 256 by default and data.size=0 takes the store's
    from alexnet.data.options import PrepareOptions
    assert c.data.size == 0 and PrepareOptions().size == 256


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads(name):
    cfg = build_config(name)
    assert from_dict(to_dict(cfg)) == cfg


def test_presets_exist():
    assert {"paper", "imagenette", "cifar10", "quick"} <= set(preset_names())


def test_overrides_are_typed():
    cfg = build_config("quick", ["optim.lr=0.02", "train.compile=true", "model.columns=1", "data.crop=100"])
    assert cfg.optim.lr == 0.02 and cfg.train.compile is True and cfg.model.columns == 1 and cfg.data.crop == 100


@pytest.mark.parametrize("override, message", [
    ("optim.lr=fast", "optim.lr='fast' is not a valid float"),
    ("model.colums=1", "unknown config key 'model.colums'"),
    ("modle.width=1", "unknown config section 'modle'"),
    ("model.columns=3", "not one of 1, 2"),
    ("optim.lr=0", "optim.lr must be > 0"),
    ("optim.batch_size=0", "optim.batch_size must be >= 1"),
    ("train.compile=maybe", "not a valid bool"),
    ("lr=0.1", "should look like section.key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(None, [override])


def test_bad_preset_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nlr = 'x'\n")
    with pytest.raises(ConfigError, match="optim.lr='x' should be of type float"):
        build_config(str(bad))
    with pytest.raises(ConfigError, match="no preset 'nope'"):
        build_config("nope")
