"""The claims table (results/claims.md): every verdict follows the stated rule from the numbers
(checked on synthetic inputs against scipy's t-interval), the committed table is what the
committed results give today, the README shows it, and a full-size result fills its rows in."""
import json
import math
import shutil
from pathlib import Path

import pytest

from alexnet.cli import main
from alexnet.experiments import claims
from alexnet.experiments import verdict as rule

REPO = Path(__file__).resolve().parents[1]


def scipy_interval(values, ratio=False):
    stats = pytest.importorskip("scipy.stats")
    x = [math.log(v) for v in values] if ratio else list(values)
    n, mean = len(x), sum(x) / len(x)
    sem = stats.sem(x)
    lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=sem) if sem > 0 else (mean, mean)
    return (math.exp(lo), math.exp(hi)) if ratio else (lo, hi)


def test_t_quantiles_are_students():
    stats = pytest.importorskip("scipy.stats")
    for df, t in enumerate(rule.T975, start=1):
        assert t == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4)
    for df, t in enumerate(rule.T80, start=1):
        assert t == pytest.approx(stats.t.ppf(0.8, df), abs=6e-4)


def test_power_p_values_and_holm_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    values = [0.35, 0.7, 1.05, -0.4, 2.0]
    x = list(values)
    sd, n = stats.tstd(x), len(x)  # the MDE written out from its definition with scipy's quantiles
    assert rule.smallest_detectable(values, False) == pytest.approx(
        (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n), rel=1e-3)
    ratios = [1.5, 2.0, 1.2]
    logs = [math.log(v) for v in ratios]
    assert math.log(rule.smallest_detectable(ratios, True)) == pytest.approx(
        (stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * stats.tstd(logs) / math.sqrt(3), rel=1e-3)
    assert rule.p_value(values, False) == pytest.approx(stats.ttest_1samp(x, 0).pvalue, rel=1e-9)
    assert rule.p_value(ratios, True) == pytest.approx(stats.ttest_1samp(logs, 0).pvalue, rel=1e-9)
    # Holm by hand: sorted 0.01, 0.02, 0.03, 0.5 times 4, 3, 2, 1, kept monotone
    assert rule.holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert rule.holm([0.4, 0.3]) == pytest.approx([0.6, 0.6])


def test_failed_runs_are_at_chance_or_diverged():
    assert rule.failed_run(2.303, 10) and rule.failed_run(2.276, 10) and rule.failed_run(float("nan"), 10)
    assert not rule.failed_run(1.82, 10)


@pytest.mark.parametrize("values, paper, ratio, expected", [
    ([1.5, 1.6, 1.4], 1.4, False, rule.REPRODUCED),  # the paper's effect inside the interval
    ([5.0, 6.0, 5.5], 1.4, False, rule.REPRODUCED),  # larger than the paper's: at least the paper's effect
    ([0.5, 0.6, 0.55], 1.4, False, rule.SMALLER),
    ([-1.0, 1.2, 0.3], 1.4, False, rule.CANNOT_DECIDE),  # holds 0 and 1.4, but could detect only ~3.4
    ([0.35, 0.7, 1.05], 1.4, False, rule.NOISE),  # holds 0 and 1.4, and could have detected 1.08: neither shown
    ([-0.2, 0.1, 0.05], 1.4, False, rule.NOT_REPRODUCED),  # holds 0, rules out the paper's 1.4
    ([-1.0, 1.2, 0.3], None, False, rule.NOISE),
    ([-2.0, -2.2, -1.9], 1.4, False, rule.NOT_REPRODUCED),
    ([3.0, 3.5, 4.0], None, False, rule.REPRODUCED),  # no number in the paper: the sign decides
    ([2.0, 2.4, 2.2, 1.9], 6.0, True, rule.SMALLER),  # ratios: judged on their logarithms
    ([0.8, 1.3, 1.1], 6.0, True, rule.NOT_REPRODUCED),  # holds 1, rules out 6x
    ([0.8, 9.0, 2.0], 6.0, True, rule.CANNOT_DECIDE),
    ([0.5, 0.6, 0.55], 2.0, True, rule.NOT_REPRODUCED),
    ([5.5, 7.0, 6.2], 6.0, True, rule.REPRODUCED),
    ([2.0, 2.1], 1.4, False, rule.NOT_RUN),  # two seeds: not enough
    ([], 1.4, False, rule.NOT_RUN),
])
def test_the_rule_on_synthetic_numbers(values, paper, ratio, expected):
    assert rule.verdict(values, paper, ratio) == expected
    if len(values) >= rule.MIN_SEEDS:  # the interval it judged is Student's, as scipy computes it
        i = rule.interval_of(values, ratio)
        assert (i.low, i.high) == pytest.approx(scipy_interval(values, ratio), rel=1e-3, abs=1e-9)
    assert rule.verdict(values, paper, ratio, needs_gpu=True) == (rule.NOT_RUN_GPU if expected == rule.NOT_RUN
                                                                  else expected)


def independent_verdict(row):
    """The rule of verdict.py written again from its docstring, on scipy's interval."""
    v = row["values"]
    if len(v) < 3:
        return "not run yet (needs a GPU)" if row["size"] == "full" else "not run yet"
    lo, hi = scipy_interval(v, row["ratio"])
    zero = 1.0 if row["ratio"] else 0.0
    reaches = row["paper"] is None or hi >= row["paper"]
    if hi < zero:
        return "not reproduced"
    if lo > zero:
        return "reproduced" if reaches else "same sign, smaller"
    if not reaches:
        return "not reproduced"
    stats = pytest.importorskip("scipy.stats")  # the smallest detectable effect from its definition
    x = [math.log(a) for a in v] if row["ratio"] else list(v)
    n = len(x)
    mde = (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * stats.tstd(x) / math.sqrt(n)
    mde = math.exp(mde) if row["ratio"] else mde
    assert row["smallest_detectable"] == pytest.approx(mde, rel=2e-3)
    return "this size cannot decide" if row["paper"] is not None and mde > row["paper"] else \
        "not distinguishable from noise"


def test_the_committed_table_is_what_the_results_say():
    table = claims.rows(REPO / "results")
    assert (REPO / "results" / "claims.md").read_text() == claims.markdown(table), \
        "results/claims.md is stale: run `alexnet experiment claims`"
    assert json.loads((REPO / "results" / "claims.json").read_text()) == json.loads(json.dumps(table))
    named = {"figure1", "lrn-cifar", "ablations", "overfitting", "tencrop-ensemble", "paper-recipe"}
    assert {r["source"].split("/")[0] for r in table if r["source"] and r["size"] == "cpu"} == named
    for row in table:
        assert row["verdict"] == independent_verdict(row), row["claim"]
        if row["p"] is not None:  # the p-value is scipy's t-test of the row's values
            stats = pytest.importorskip("scipy.stats")
            x = [math.log(a) for a in row["values"]] if row["ratio"] else row["values"]
            assert row["p"] == pytest.approx(stats.ttest_1samp(x, 0).pvalue, rel=1e-6, abs=1e-12)
        assert row["size"] != "full" or row["values"] or row["verdict"] == rule.NOT_RUN_GPU


def test_every_verdict_follows_from_the_result_files():
    """The per-seed values of every cpu row recomputed from its result.json by hand (not through
    claims.py's measures), and the verdict from them: paired differences, failed runs kept out."""
    table = {(r["claim"], r["size"]): r for r in claims.rows(REPO / "results")}
    abl = json.loads((REPO / "results" / "ablations" / "result.json").read_text())["rows"]
    for variant, claim in (("no LRN", "LRN lowers top-1 error"), ("pooling 2/2", "overlapping pooling (3/2) lowers "
                           "top-1 error vs 2/2"), ("no conv3", "removing conv3 raises top-1 error")):
        pairs = zip(abl[variant]["per_seed"], abl["paper net"]["per_seed"])
        values = [100 * (a["10crop"]["top1_error"] - b["10crop"]["top1_error"]) for a, b in pairs
                  if not a.get("failed") and not b.get("failed")]
        row = table[(claim, "cpu")]
        assert row["values"] == pytest.approx(values) and row["verdict"] == independent_verdict(row)
    cifar = json.loads((REPO / "results" / "lrn-cifar" / "result.json").read_text())["runs"]
    kept = [100 * (a["top1_error"] - b["top1_error"]) for a, b in zip(cifar["false"], cifar["true"])
            if max(a["final_loss"], b["final_loss"]) < 0.95 * math.log(10)]  # at chance: a failure, kept out
    row = table[("LRN lowers CIFAR-10 test error (conv + locally connected net)", "cpu")]
    assert row["values"] == pytest.approx(kept) and row["verdict"] == independent_verdict(row)


def test_the_readme_shows_the_claims_table():
    table = (REPO / "results" / "claims.md").read_text().strip()
    assert table in (REPO / "README.md").read_text(), "README's claims table differs from results/claims.md"


def test_a_full_size_result_fills_its_rows_in(tmp_path, capsys):
    results = tmp_path / "results"
    (results / "full" / "lrn-cifar").mkdir(parents=True)
    seeds = [(0.14, 0.11), (0.135, 0.112), (0.13, 0.108)]  # (without, with LRN) per seed
    full = {"size": "full", "command": "alexnet experiment lrn-cifar --size full", "date": "today",
            "settings": {"phases": [39000, 6000]},
            "runs": {"false": [{"top1_error": a, "train_images": 50000} for a, _ in seeds],
                     "true": [{"top1_error": b, "train_images": 50000} for _, b in seeds]}}
    (results / "full" / "lrn-cifar" / "result.json").write_text(json.dumps(full))
    assert main(["experiment", "claims", "--results", str(results)]) == 0
    rows = [r for r in json.loads((results / "claims.json").read_text()) if r["source"] == "full/lrn-cifar/result.json"]
    assert len(rows) == 1 and rows[0]["values"] == pytest.approx([3.0, 2.3, 2.2]) and rows[0]["seeds"] == 3
    assert rows[0]["verdict"] == rule.REPRODUCED  # mean 2.5, the paper's 2 points inside the interval
    others = [r for r in json.loads((results / "claims.json").read_text()) if r["size"] == "full" and not r["values"]]
    assert others and all(r["verdict"] == rule.NOT_RUN_GPU for r in others)
    assert "50,000 images, 45000 steps" in (results / "claims.md").read_text() and (results / "claims.png").is_file()


def test_claims_without_a_results_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["experiment", "claims", "--results", str(tmp_path / "none")]) == 2
    assert "is not a folder of results" in capsys.readouterr().err


def test_an_experiment_without_data_is_a_clear_error(capsys):
    assert main(["experiment", "figure1", "--size", "tiny"]) == 2
    assert "needs --data" in capsys.readouterr().err


def test_the_committed_results_copy_regenerates(tmp_path):
    """The command writes the same table as the committed one from a copy of results/."""
    copy = tmp_path / "results"
    shutil.copytree(REPO / "results", copy)
    assert main(["experiment", "claims", "--results", str(copy)]) == 0
    assert (copy / "claims.md").read_text() == (REPO / "results" / "claims.md").read_text()
