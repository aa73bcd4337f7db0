"""The README and docs/results.md show each result as it is on disk: every results/<name>/ says its
command, date and device, the README names every command, and every table.md appears verbatim
(the quickstart's in the README, the others in docs/results.md), and the quickstart's table is what
its result.json gives. Every other number of the README and docs/results.md is tied to its file and
key by docs/numbers.toml (tests/test_numbers.py)."""
import json
from pathlib import Path

from alexnet.cli.quickstart import quickstart_table

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
RESULTS_DOC = (REPO / "docs" / "results.md").read_text()


def result_folders() -> list[Path]:
    folders = sorted(p.parent for p in (REPO / "results").glob("*/result.json"))
    assert folders, "no results/ to check"
    return folders


def test_every_result_is_shown_with_its_command():
    for folder in result_folders():
        result = json.loads((folder / "result.json").read_text())
        assert result["command"].startswith("alexnet ") and result["date"] and result["device"], folder
        assert result["command"] in README, f"README lacks the command of {folder.name}: {result['command']}"
        table = (folder / "table.md").read_text().strip()
        shown = README if folder.name == "quickstart" else RESULTS_DOC
        assert table in shown, f"the table of {folder.name} differs from its table.md"


def test_the_quickstart_table_is_what_its_result_json_says():
    folder = REPO / "results" / "quickstart"
    record = json.loads((folder / "result.json").read_text())
    assert (folder / "table.md").read_text().strip() == quickstart_table(record)
    assert set(record["errors"]) == {"center", "10crop"} and set(record["seconds"]) >= {"prepare", "train", "evaluate", "total"}
    assert all(0 <= e["top5"] <= e["top1"] <= 1 for e in record["errors"].values())
