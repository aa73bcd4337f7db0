"""Reading tar archives member by member, never extracting, and never taking a damaged header for
the end: `open_tar` + `tar_members` list the members and name every stretch of bytes that is no
member; `TarReader` and `read_member` read one member's bytes at the offset the listing found."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 256 * 2**20  # no image we want is this large; refuse before reading it into RAM

# What tarfile alone gets wrong: it takes a damaged 512-byte header in the middle of an archive for
# the archive's end, silently (issue 31: 40 of 56 images lost, "skipped 0"). Archives are opened
# with ignore_zeros, so a bad header is skipped block by block up to the next valid one, like GNU
# tar's "Skipping to next header"; every stretch of bytes that is neither a member nor zero padding
# is reported by offset, so a damaged archive is never read as complete.
DAMAGED_HEADER = "damaged tar header: the member stored there is not read (its name is lost with its header)"
DAMAGED_END = "the archive ends inside a member or cannot be read from here: what follows is not read"


@dataclass(frozen=True)
class Damage:
    """Bytes of a tar stream that are not part of any member read: a damaged header and its data."""

    offset: int  # in the (decompressed) tar stream
    reason: str

    def where(self, archive: str) -> str:
        return f"{archive} at byte {self.offset}"


def open_tar(path: Path | None = None, fileobj=None) -> tarfile.TarFile:
    """A tar archive (plain, .gz, .bz2 or .xz, told by its first bytes) opened to read past a
    damaged header (see tar_members). Compression is not guessed by trial: with ignore_zeros a
    compressed file would read as a plain tar with no members."""
    if fileobj is not None:
        head = fileobj.read(6)
        fileobj.seek(0)
    else:
        with open(path, "rb") as f:
            head = f.read(6)
    kind = next((k for magic, k in _MAGIC if head.startswith(magic)), "")
    if not kind or fileobj is not None:
        return tarfile.open(path, "r:", fileobj, ignore_zeros=True)
    stream = _OPENERS[kind](path)
    try:
        tf = _StreamTar(fileobj=_Behind(stream), ignore_zeros=True)
    except BaseException:
        stream.close()
        raise
    tf.stream = stream
    return tf


_MAGIC = ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
_OPENERS = {"gz": gzip.GzipFile, "bz2": bz2.BZ2File, "xz": lzma.LZMAFile}


class _StreamTar(tarfile.TarFile):
    """A tar read from a decompressed stream that it owns (closed with it)."""

    stream = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.stream is not None:
                self.stream.close()


class _Behind(io.RawIOBase):
    """A decompressed stream that can seek back a little without decompressing again from the start:
    the last KEEP bytes read are kept. tar_members looks back at the headers before each member (a
    pax header, a long name), which a compressed file could only reach by starting over."""

    KEEP = 2**20

    def __init__(self, f):
        self.f, self.pos = f, 0
        self.kept, self.kept_at = bytearray(), 0  # the bytes [kept_at, kept_at + len(kept)) of the stream

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos}[whence]
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.kept_at + len(self.kept)
        if self.kept_at <= self.pos < end:  # from the kept bytes, then on from the stream
            k = len(self.kept) - (self.pos - self.kept_at) if n < 0 else min(n, end - self.pos)
            head = bytes(self.kept[self.pos - self.kept_at:self.pos - self.kept_at + k])
            self.pos += k
            return head + (self.read(n - k) if n < 0 or n > k else b"")
        if self.f.tell() != self.pos:
            self.f.seek(self.pos)  # forward: skips; far back (a damaged stretch): starts over
        data = self.f.read(n)
        if end != self.pos:
            self.kept, self.kept_at = bytearray(), self.pos
        self.kept += data
        if len(self.kept) > 2 * self.KEEP:
            drop = len(self.kept) - self.KEEP
            del self.kept[:drop]
            self.kept_at += drop
        self.pos += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def tar_members(tf: tarfile.TarFile, damage: list[Damage]) -> Iterator[tarfile.TarInfo]:
    """The members of `tf` (opened by open_tar), each stretch of non-zero bytes between them (or
    after the last one) added to `damage`, and an archive cut short (or a broken compressed stream)
    ending in one Damage after the members that were whole. Raises only when not one member is found."""
    end = 0  # where the last member's data (padded to 512 bytes) ends
    try:
        for m in tf:
            if m.offset > end and not _headers_only(tf, end, m.offset):
                damage.append(Damage(end, DAMAGED_HEADER))
            end = tf.offset
            yield m
        if _nonzero(tf.fileobj, end, None):
            damage.append(Damage(end, DAMAGED_HEADER))
    except (tarfile.ReadError, EOFError, zlib.error, OSError) as e:
        if end == 0:
            raise
        damage.append(Damage(end, f"{DAMAGED_END} ({e})"))


_EXTENDED = (tarfile.XGLTYPE, tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
             tarfile.GNUTYPE_LONGLINK)  # headers that describe the next member (a pax global header, a long name)


def _headers_only(tf: tarfile.TarFile, start: int, stop: int) -> bool:
    """Whether bytes [start, stop) before a member are only zero blocks and the extended headers
    tarfile consumed for it (pax headers, GNU long names) with their data."""
    f = tf.fileobj
    while start < stop:
        f.seek(start)
        block = f.read(tarfile.BLOCKSIZE)
        if block.count(0) == len(block) == tarfile.BLOCKSIZE:
            start += tarfile.BLOCKSIZE
            continue
        try:
            info = tarfile.TarInfo.frombuf(block, tf.encoding, tf.errors)
        except tarfile.HeaderError:
            return False
        if info.type not in _EXTENDED:
            return False
        start += tarfile.BLOCKSIZE * (1 + -(-info.size // tarfile.BLOCKSIZE))
    return start == stop


def _nonzero(f, start: int, size: int | None) -> bool:
    """Whether bytes [start, start + size) of the stream (to its end for None) hold anything but zeros."""
    f.seek(start)
    left = size if size is not None else -1
    while left:
        block = f.read(2**20 if left < 0 else min(left, 2**20))
        if not block:
            return False
        if block.count(0) != len(block):
            return True
        left = left - len(block) if left > 0 else left
    return False


class TarReader:
    """Random access to the listed members of an archive, by their data offset.

    Reading in sorted order seeks forward through a .tar.gz when the archive is sorted (as
    `tar` writes a sorted tree); backward seeks still work, they only restart decompression.
    """

    def __init__(self, path: Path):
        self.tf = open_tar(path)  # opens the stream; members are not listed again

    def read(self, entry) -> bytes:
        """The bytes of `entry` (a sources.Entry of this archive: its data offset and size)."""
        if entry.size > MAX_FILE_BYTES:
            raise OSError(f"file too large ({entry.size} bytes)")
        f = self.tf.fileobj
        f.seek(entry.offset)
        data = f.read(entry.size)
        if len(data) != entry.size:
            raise OSError("archive ends inside this member")
        return data

    def close(self) -> None:
        self.tf.close()


def is_plain_tar(path: Path) -> bool:
    """An uncompressed tar (ImageNet's own archives): its members can be read at their offsets
    by any process, with no decompression stream to share."""
    with open(path, "rb") as f:
        head = f.read(265)
    return len(head) == 265 and head[257:262] == b"ustar"


def read_member(path: str, offset: int, size: int) -> bytes:
    """One member's bytes from a plain tar at the data offset the listing found."""
    if size > MAX_FILE_BYTES:
        raise OSError(f"file too large ({size} bytes)")
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError("archive ends inside this member")
    return data
