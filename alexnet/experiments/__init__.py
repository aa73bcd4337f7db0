"""The paper's experiments, one command each (`alexnet experiment NAME`): Figure 1 (§3.1), the
LRN claim on CIFAR-10 (§3.3), the ablation table (§3-§4, §6), ten patches and ensembles (§6).
Each runs at a size (tiny: tests; cpu: the README's run; full: a GPU) and writes
results/<name>/result.json, a plot and a markdown table."""
from __future__ import annotations

from importlib import import_module

SIZES = ("tiny", "cpu", "full")  # tiny: the tests (seconds); cpu: the README's 2-core run; full: a GPU

# name -> (module, the store it needs, what it reproduces)
EXPERIMENTS = {
    "figure1": ("figure1", "CIFAR-10", "Figure 1 (§3.1): ReLU vs tanh, epochs to 25% training error"),
    "lrn-cifar": ("lrn_cifar", "CIFAR-10", "§3.3: test error of the conv + locally connected net without / with LRN"),
    "ablations": ("ablations", "Imagenette", "§3-§4, §6: the paper net vs each ablation switch, ten patches"),
    "overfitting": ("overfitting", "Imagenette", "§4.1, §4.2: training vs validation error without augmentation, without dropout"),
    "tencrop-ensemble": ("tencrop", "Imagenette", "§4.1, §6: centre vs ten patches, one net vs an ensemble"),
    "paper-recipe": ("paper_recipe", "Imagenette", "§5: the paper's recipe at full width, beside biases 0.1 and He init"),
}


def run_experiment(name: str, ctx) -> dict:
    module = import_module(f".{EXPERIMENTS[name][0]}", __name__)
    return module.run(ctx)
