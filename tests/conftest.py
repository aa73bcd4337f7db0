"""Shared fixtures: the real data archives and small stores made from them.

The one place tests find the data: $ALEXNET_DATA, else ../shared/data beside the checkout. Every
test module takes DATA, IMAGENETTE and CIFAR from here (none hard-codes a path), and a missing
archive fails the tests that read it, naming where it was looked for (never a skip)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ALEXNET_DATA") or REPO.parent / "shared" / "data")
IMAGENETTE = DATA / "imagenette-224.tar.gz"
CIFAR = DATA / "cifar10-jpeg.tar.gz"


def need(*archives: Path) -> None:
    """Fail (never skip) when a data archive a test reads is missing."""
    for archive in archives:
        if not archive.is_file():
            pytest.fail(f"{archive} is missing: the tests need the data archives in ../shared/data "
                        "(or set ALEXNET_DATA to the folder holding them)", pytrace=False)


def pytest_report_header(config):
    return f"alexnet data: {DATA} ($ALEXNET_DATA or ../shared/data)"


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """12 real Imagenette images per class and split, stored at 72px (64px crops)."""
    from alexnet.data.prepare import prepare
    need(IMAGENETTE)
    out = tmp_path_factory.mktemp("stores") / "imagenette-72"
    prepare(IMAGENETTE, out, size=72, limit_per_class=12, progress=False, workers=2)
    return out


def tiny_overrides(store: Path, out: Path, *extra: str) -> list[str]:
    """A paper net small enough to take a step in milliseconds on a CPU, on the tiny store."""
    return [f"data.store={store}", f"train.out={out}", "model.num_classes=10", "model.width=0.125",
            "data.size=72", "data.crop=64", "optim.batch_size=16", "eval.batch_size=64", "train.progress=false",
            "train.log_every_steps=1", "model.init=kaiming", "model.input_scale=0.01724",
            "data.holdout=0",  # all 120 training images train (step counts below); tests/test_holdout.py holds out
            # the paper's recipe, not the quick preset's budget choices (tested in test_quickstart, test_holdout):
            "train.precision=fp32", "train.channels_last=false",  # float32-exact comparisons
            "optim.lr=0.01", "model.dropout=0.5", "schedule.kind=plateau", "schedule.warmup_epochs=0",
            "schedule.patience=2", "schedule.tail_epochs=1",
            *extra]
