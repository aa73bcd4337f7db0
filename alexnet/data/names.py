"""Human names of classes, read at prepare time; the ids (WordNet ids for ImageNet) stay the key.

A set may ship its names in a file: ImageNet's ``synset_words.txt`` and Kaggle's
``LOC_synset_mapping.txt`` (``n01440764 tench, Tinca tinca``), Tiny ImageNet's ``words.txt``
(``n01440764<TAB>tench, Tinca tinca``, for all 82,115 WordNet synsets), a plain ``classes.txt``
(``ID NAME`` lines, or one name per line in class order), or the devkit's ``meta.mat`` (read in
data/imagenet.py). A name is shown as its first synonym: "garbage truck, dustcart" -> "garbage truck".
"""
from __future__ import annotations

from pathlib import Path

from .sources import LabelsError, NAME_FILES, _text_lines

# The ten Imagenette classes (fastai's imagenette2: ImageNet-1k synsets), first synonyms of their
# entries in ImageNet's synset_words.txt; the bundled archive ships no names file.
IMAGENETTE = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player", "n03000684": "chain saw",
    "n03028079": "church", "n03394916": "French horn", "n03417042": "garbage truck", "n03425413": "gas pump",
    "n03445777": "golf ball", "n03888257": "parachute",
}


def first_synonym(words: str) -> str:
    return words.split(",", 1)[0].strip()


def parse_names(path: Path | str, data: bytes, classes: list[str]) -> dict[str, str]:
    """id -> name for the ids in `classes`, from ``ID<TAB or space>NAME`` lines (other ids are
    ignored: words.txt names every synset), or from one name per line in class order when no
    line starts with a class id and the counts agree."""
    lines = [line.strip() for line in _text_lines(Path(path), data) if line.strip()]
    wanted = set(classes)
    found: dict[str, str] = {}
    for line in lines:
        cid, _, name = line.partition("\t") if "\t" in line else line.partition(" ")
        if cid in wanted and first_synonym(name):
            found.setdefault(cid, first_synonym(name))
    if not found and len(lines) == len(classes):
        return {c: first_synonym(line) for c, line in zip(classes, lines)}
    return found


def names_from_texts(texts: dict[str, bytes], classes: list[str]) -> dict[str, str]:
    """Names from the names files a listing found (sources.NAME_FILES, in that order of preference)."""
    for wanted in NAME_FILES:
        for path, data in sorted(texts.items()):
            if path.rsplit("/", 1)[-1] == wanted:
                try:
                    found = parse_names(path, data, classes)
                except LabelsError:
                    continue  # not a text file: not a names file either
                if found:
                    return found
    return {}


def read_names_file(path: str | Path, data: bytes, classes: list[str]) -> dict[str, str]:
    """`--class-names FILE`: it must name at least one class."""
    found = parse_names(path, data, classes)
    if not found:
        raise LabelsError(f"{path} names none of the {len(classes)} classes: expected 'ID NAME' lines "
                          f"(e.g. '{classes[0]} {IMAGENETTE.get(classes[0], 'its name')}') or one name per line "
                          "in class order")
    return found


def display_names(classes: list[str], found: dict[str, str] | None = None) -> list[str]:
    """One name per class: the found name, else a known Imagenette name, else the id itself."""
    found = found or {}
    return [found.get(c) or IMAGENETTE.get(c, c) for c in classes]
