"""benchmarks/explosion.md shows the committed measurements as they are: every table row in it is a
row that benchmarks/explosion.py prints from explosion-cpu.json and the two logs (no torch work)."""
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
spec = importlib.util.spec_from_file_location("explosion", BENCH / "explosion.py")
explosion = importlib.util.module_from_spec(spec)
sys.modules["explosion"] = explosion
spec.loader.exec_module(explosion)


def printed_tables() -> set[str]:
    runs = explosion.load_runs([str(BENCH / "explosion-cpu.json")])
    text = [explosion.summary([r for r in runs if r["steps"]]), explosion.gain_table([r for r in runs if not r["steps"]])]
    text += [explosion.layer_table(r) for r in runs if r["candidate"] == "baseline" and r["steps"]]
    text += [explosion.log_table(str(BENCH / name)) for name in ("explosion-long-cpu.log", "explosion-long-seed1-cpu.log")]
    return {line for t in text for line in t.splitlines()}


def test_every_table_row_of_the_note_comes_from_the_committed_results():
    rows = [line for line in (BENCH / "explosion.md").read_text().splitlines() if line.startswith("|")]
    assert len(rows) > 60, "the note lost its tables"
    printed = printed_tables()
    assert [row for row in rows if row not in printed] == []


def test_candidates_name_the_package_options():
    assert explosion.parse_candidate("baseline")["dropout"] == "inverted"  # the preset before §4.2 became the default
    o = explosion.parse_candidate("paperdrop+code2012+lr=0.002")
    assert (o["dropout"], o["init"], o["biaslr2"], o["lr"]) == ("paper", "code2012", True, 0.002)
    cfg = explosion.build(dict(o, classes_out=10), seed=0).cfg
    assert (cfg.dropout_mode, cfg.init, cfg.num_classes) == ("paper", "code2012", 10)
