"""The README shows each result as it is on disk: every results/<name>/table.md appears in it
verbatim, with the command that made it, and every result says its command, date and device."""
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_result_is_in_the_readme_with_its_command():
    readme = (REPO / "README.md").read_text()
    folders = sorted(p.parent for p in (REPO / "results").glob("*/result.json"))
    assert folders, "no results/ to check"
    for folder in folders:
        result = json.loads((folder / "result.json").read_text())
        assert result["command"].startswith("alexnet ") and result["date"] and result["device"], folder
        assert result["command"] in readme, f"README lacks the command of {folder.name}: {result['command']}"
        assert (folder / "table.md").read_text().strip() in readme, f"README's table of {folder.name} differs from table.md"
