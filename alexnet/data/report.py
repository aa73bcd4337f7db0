"""What a prepare run says: the one-line summary, the skipped files with their reasons (the
manifest skipped.tsv, one row per file that is not stored), and the main kinds of reason."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alexnet.data.store import MANIFEST, escape_line, unescape_line


@dataclass
class PrepareSummary:
    read: int
    stored: int
    skipped: int  # read == stored + skipped
    manifest: Path  # lists every skipped source file with its reason
    out: Path = field(default=Path("."))
    reasons: tuple[tuple[str, int], ...] = ()  # the most common reasons for a skip, with their counts
    files: tuple[tuple[str, str], ...] = ()  # every skipped file and its reason, from the manifest
    empty: tuple[str, ...] = ()  # classes of which no image of the stats split could be stored
    stats_split: str = "train"
    notes: tuple[str, ...] = ()  # what prepare decided on its own (a labels file it found, a split left out)

    def line(self) -> str:
        why = "; main reasons: " + ", ".join(f"{n} {escape_line(reason)}" for reason, n in self.reasons) if self.reasons else ""
        empty = (f"; no image of class {', '.join(self.empty[:3])}{' ...' if len(self.empty) > 3 else ''} could be "
                 f"stored in split {self.stats_split}: a net cannot learn it (fix those files and prepare again)"
                 if self.empty else "")
        return (f"read {self.read}, stored {self.stored}, skipped {self.skipped} -> {self.out} "
                f"(manifest: {self.manifest}){why}{empty}")

    def lines(self, most: int = 100) -> list[str]:
        """The summary line, then each skipped file with its reason (the first `most`; all are in the manifest)."""
        shown = [f"  skipped {escape_line(name)}: {escape_line(reason)}" for name, reason in self.files[:most]]
        more = [f"  ... and {len(self.files) - most} more in {self.manifest}"] if len(self.files) > most else []
        return [self.line(), *(f"  note: {n}" for n in self.notes), *shown, *more]


def manifest_rows(manifest: Path) -> list[list[str]]:
    """(split, path, reason) of every skipped file."""
    rows = [line.split("\t") for line in manifest.read_text(errors="replace").split("\n")[1:]]
    return [[unescape_line(f) for f in r] for r in rows if len(r) == 3]


def main_reasons(manifest: Path, split: str | None = None, n: int = 3) -> tuple[tuple[str, int], ...]:
    """The n most common kinds of reason in the manifest (of one split, or all), with their counts."""
    kinds = Counter(reason_kind(r[2]) for r in manifest_rows(manifest) if split in (None, r[0]))
    return tuple(kinds.most_common(n))


def reason_kind(reason: str) -> str:
    """A reason without the details of one file: 'corrupt image: OSError: ...' -> 'corrupt image'."""
    reason = re.sub(r"'[^']*'", "'...'", reason)
    reason = re.sub(r" \([^)]*\)", "", reason)
    reason = re.sub(r"line \d+", "line N", reason)
    return reason.split(": ", 1)[0]


def summary(out: Path, meta: dict[str, Any]) -> PrepareSummary:
    s = meta["summary"]
    reasons = main_reasons(out / MANIFEST) if s["skipped"] else ()
    files = tuple((r[1], r[2]) for r in manifest_rows(out / MANIFEST))
    return PrepareSummary(s["read"], s["stored"], s["skipped"], out / MANIFEST, out, reasons, files,
                          tuple(meta.get("empty_classes", ())), meta.get("stats_split", "train"),
                          tuple(meta.get("notes", ())))


def different(out: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    diff = ", ".join(f"{k} {old.get(k)!r} -> {new[k]!r}" for k in new if old.get(k) != new[k])
    return f"{out} was prepared with different arguments ({diff}): choose a new OUT or delete it"
