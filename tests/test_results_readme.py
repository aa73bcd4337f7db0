"""The README and docs/results.md show each result as it is on disk: every results/<name>/ says its
command, date and device, the README names every command, and every table.md appears verbatim
(the quickstart's in the README, the others in docs/results.md). The quickstart's table is what
its result.json gives, and every measured number the README states is in a committed file."""
import json
import re
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


def prose(text: str) -> str:
    """Markdown without its code: fenced blocks, inline code, link targets and HTML comments."""
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"§\d+(\.\d+)*", "§", text)  # the paper's sections are not measurements
    return re.sub(r"`[^`]*`", "", text)


def artifacts() -> str:
    """The text of every committed result and benchmark record."""
    files = [*(REPO / "results").glob("*/table.md"), *(REPO / "results").glob("*/result.json"),
             *(REPO / "results").glob("*.md"), *(REPO / "benchmarks").glob("*.json")]
    return "\n".join(p.read_text() for p in files)


def test_every_measured_number_in_the_readme_is_in_a_committed_file():
    """A decimal number, a percentage or a time in seconds in the README's prose is a measurement:
    it must appear in a results/ or benchmarks/ file (integers that count things, like 3,925
    images, are the data's and are not checked)."""
    found = artifacts()
    numbers = re.findall(r"\d+\.\d+|\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)? s\b", prose(README))
    assert numbers, "the README states no result"
    value = (re.match(r"[\d.]+", n).group() for n in numbers)
    missing = [v for v in value if not re.search(rf"(?<![\d.]){re.escape(v)}(?!\d)", found)]
    assert not missing, f"numbers in the README with no committed file behind them: {missing}"
