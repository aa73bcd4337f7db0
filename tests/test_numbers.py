"""Every number README.md and docs/results.md state is tied to one committed file and key.

docs/numbers.toml lists, for each sentence or table cell of those documents that holds a
number, either where the number comes from (a committed file and the value in it, rounded as
written) or, for a number that is not a measurement (the paper's, a config value, a goal), why.
This test reads both documents and fails, naming the line, when a number disagrees with its
file, when a listed text is missing, and when a number is in neither the manifest nor a
committed file shown verbatim.

Which numbers: a decimal (0.572), a percentage (10%), a time (259 s, 0.16 ms, 56.6 min), a ratio
(1.4x) or a difference in points (2.4 points). Integers with no unit count or size things (3,925
images, 100 steps, batch 64): the data's or the config's, not checked. Not read at all: code
(fenced blocks, inline code), link targets, HTML comments, the paper's section numbers (§3.3),
dates, versions, and the committed files the documents show verbatim (every results/*/table.md
and results/claims.md: test_results_readme.py and test_claims.py check those are verbatim and
what their experiment wrote)."""
import json
import math
import re
import statistics
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "docs" / "numbers.toml"
DOCS = ("README.md", "docs/results.md")
VERBATIM = ("results/*/table.md", "results/claims.md")

NUMBER = r"[+-]?\d[\d,]*(?:\.\d+)?"
# a number, then the unit that makes it a measurement (a decimal needs none)
CANDIDATE = re.compile(r"(?<![\w.])(?P<n>\d[\d,]*(?:\.\d+)?)(?P<unit>\s?%|\s(?:s|ms|min)\b|x\b|\spoints?\b)?")
NOT_READ = [r"(?ms)^```.*?^```", r"`[^`]*`", r"\]\([^)]*\)", r"(?s)<!--.*?-->", r"§\d+(?:\.\d+)*",
            r"\d{4}-\d\d-\d\d(?:T[\d:+]+)?", r"\d+\.\d+\.\d+"]


@dataclass
class Entry:
    """One manifest row: a text of a document, the numbers it holds and where they come from."""
    doc: str
    text: str
    file: str = ""
    values: tuple[str, ...] = ()
    format: str | tuple[str, ...] = ""
    given: str = ""

    def formats(self) -> tuple[str, ...]:
        """One format spec per value: the entry's one, or its list."""
        return (self.format,) * len(self.values) if isinstance(self.format, str) else self.format

    def where(self) -> str:
        return f"docs/numbers.toml entry {self.text!r} ({self.doc})"


def manifest() -> list[Entry]:
    entries = []
    for row in tomllib.loads(MANIFEST.read_text())["number"]:
        fmt = row.get("format", "")
        entries.append(Entry(**{**row, "values": tuple(row.get("values", ())),
                                "format": fmt if isinstance(fmt, str) else tuple(fmt)}))
    for e in entries:
        assert e.doc in DOCS, f"{e.where()}: doc must be one of {DOCS}"
        assert bool(e.given) != bool(e.file), f"{e.where()}: give either a file (with values) or a reason (given)"
        if e.file:
            assert e.text.count("{}") == len(e.values) == len(e.formats()) > 0, \
                f"{e.where()}: one value (and format) per {{}} in the text"
    return entries


@cache
def committed() -> set[str]:
    """The files git tracks in this checkout (a record only on this disk is not a record)."""
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return set(listed.stdout.splitlines())


def read_record(path: Path):
    """A committed record: JSON, JSON lines (a list of rows) or text (for find())."""
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return text


def values_of(entry: Entry) -> list[str]:
    """The entry's numbers as its document should show them, computed from its file."""
    path = REPO / entry.file
    assert entry.file in committed() and path.is_file(), f"{entry.where()}: {entry.file} is not a committed file"
    record = read_record(path)

    def at(key: str):
        """The value at a dotted key path (list items by index; a key may hold dots: "lr-0.01")."""
        value, parts = record, key.split(".")
        while parts:
            part = parts.pop(0)
            while isinstance(value, dict) and part not in value and parts:
                part += "." + parts.pop(0)
            value = value[int(part)] if isinstance(value, list) else value[part]
        return value

    def find(pattern: str) -> float:
        """The one group of a regular expression in a text record, as a number."""
        match = re.search(pattern, record)
        assert match, f"{entry.where()}: {pattern!r} is not in {entry.file}"
        return float(match.group(1))

    def rows(key: str, field: str) -> list:
        """One field of every item of the list (or dict) at a key path."""
        items = at(key)
        return [item[field] for item in (items.values() if isinstance(items, dict) else items)]

    names = {"at": at, "find": find, "rows": rows, "median": statistics.median, "mean": statistics.mean,
             "gmean": statistics.geometric_mean, "sqrt": math.sqrt, "min": min, "max": max, "abs": abs, "float": float}
    shown = []
    for value, spec in zip(entry.values, entry.formats()):
        try:
            shown.append(format(eval(value, {"__builtins__": {}}, names), spec))
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as e:
            raise AssertionError(f"{entry.where()}: {value} fails on {entry.file}: {type(e).__name__} {e}") from None
    return shown


def blank(text: str, start: int, end: int) -> str:
    """The text with [start, end) replaced by spaces, line breaks kept (line numbers stay true)."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def readable(doc: str, text: str) -> str:
    """The document with everything this test does not read blanked out."""
    for pattern in VERBATIM:
        for path in sorted(REPO.glob(pattern)):
            shown = path.read_text().strip()
            start = text.find(shown) if shown else -1
            while start >= 0:
                text = blank(text, start, start + len(shown))
                start = text.find(shown)
    for pattern in NOT_READ:
        for m in re.finditer(pattern, text):
            text = blank(text, m.start(), m.end())
    return text


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def template(entry: Entry) -> re.Pattern:
    """The entry's text as a pattern that finds it whatever numbers its {} hold."""
    return re.compile(f"({NUMBER})".join(re.escape(part) for part in entry.text.split("{}")))


def covered_spans(doc: str, text: str, entries: list[Entry]) -> tuple[list[tuple[int, int]], list[str]]:
    """The spans of the document the manifest accounts for, and every disagreement found."""
    spans, problems = [], []
    for e in (e for e in entries if e.doc == doc):
        if e.given:
            starts = [m.start() for m in re.finditer(re.escape(e.text), text)]
            spans += [(s, s + len(e.text)) for s in starts]
        else:
            try:
                expected = values_of(e)
            except AssertionError as failed:
                problems.append(str(failed))
                continue
            matches = list(template(e).finditer(text))
            starts = [m.start() for m in matches]
            for m in matches:
                for i, want in enumerate(expected, 1):
                    spans.append(m.span(i))
                    if m.group(i) != want:
                        problems.append(f"{doc}:{line_of(text, m.start(i))}: says {m.group(i)} where "
                                        f"{e.file} gives {want} ({e.values[i - 1]}, format {e.formats()[i - 1]!r})")
        if not starts:
            problems.append(f"{e.where()}: that text is not in {doc} (fix the entry or the document)")
    return spans, problems


def problems_in(doc: str, text: str, entries: list[Entry]) -> list[str]:
    """Each number of the document that disagrees with its file or has no entry, with its line."""
    spans, problems = covered_spans(doc, text, entries)
    for m in CANDIDATE.finditer(readable(doc, text)):
        if "." not in m["n"] and not m["unit"]:
            continue  # an integer with no unit counts or sizes a thing
        start, end = m.span("n")
        if not any(s <= start and end <= e for s, e in spans):
            problems.append(f"{doc}:{line_of(text, start)}: {' '.join(m.group().split())!r} has no entry in "
                            "docs/numbers.toml (its file and key, or why it is not a measurement)")
    return problems


def test_every_number_in_the_docs_is_tied_to_a_file_and_key():
    entries = manifest()
    problems = [p for doc in DOCS for p in problems_in(doc, (REPO / doc).read_text(), entries)]
    assert not problems, "\n".join(problems)


def test_a_changed_or_unlisted_number_is_named_with_its_line():
    entries = manifest()
    e = next(e for e in entries if e.doc == "README.md" and e.file)
    text = (REPO / e.doc).read_text()
    m = template(e).search(text)
    changed = text[:m.start(1)] + "12.3" + text[m.end(1):]
    assert problems_in(e.doc, changed, entries) == [
        f"README.md:{line_of(text, m.start(1))}: says 12.3 where {e.file} gives {values_of(e)[0]} "
        f"({e.values[0]}, format {e.formats()[0]!r})"]
    added = text + "\nA new claim: 3.14 times faster.\n"
    assert problems_in(e.doc, added, entries) == [
        f"README.md:{line_of(added, len(added) - 2)}: '3.14' has no entry in docs/numbers.toml "
        "(its file and key, or why it is not a measurement)"]
    broken = Entry(doc=e.doc, text=e.text, file=e.file, values=("at('no.such.key')",), format=".1f")
    assert covered_spans(e.doc, text, [broken])[1] == [
        f"{broken.where()}: at('no.such.key') fails on {e.file}: KeyError 'no.such.key'"]
