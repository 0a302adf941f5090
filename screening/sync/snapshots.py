"""Snapshot files: the index's base as built at one position, written once and read by many replicas.

A snapshot holds what a full load builds: the EXACT entries' Base
(screening/index/compact.py) with its arrays already sorted and its look-up
table made, the other entries as rows, and the position it is complete up
to, whose `cluster` is the cluster's system identifier
(pg_control_system()). `screening snapshot` writes one through fsspec, so a
path, file://, s3://, gs://... all work; a replica started with
--snapshot-url takes its index from it instead of reading every entry from
the database and sorting them, then catches up from its position through
the change feed like after any load. When the feed cannot continue from
there (another cluster; tombstones purged past it: a file older than
--tombstone-retention) the replica loads from the database as without a
file.

The format is a thin, versioned wrapper: one uncompressed .npz (a zip of
.npy arrays, readable with numpy.load) whose member `meta` is JSON (format,
version, position, the base's tenant names and entry count, the other
entries), written next to its final name and then moved there, so a reader
never sees half a file. Version 2 holds Base.arrays(), each member's data
64-byte aligned in the file, so a reader reads the file into memory once and
uses the arrays where they lie: no sort, no copy. Each member's zip CRC-32 is
checked, and Base.from_arrays checks that the arrays fit together. Version 1
(the columns a load reads, unsorted) is still read, and sorted as after a
load.
"""

from __future__ import annotations

import dataclasses
import io
import json
import mmap
import struct
import zipfile
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any

import fsspec
import numpy as np
import numpy.typing as npt

from screening.index.compact import Base, Columns
from storage import changes

FORMAT = "screening-snapshot"
VERSION = 2
_V1_ARRAYS = ("tenant", "keys", "hi", "lo", "expires")  # changes.Snapshot's columns
_ALIGN = np.lib.format.ARRAY_ALIGN  # an .npy header pads its data to this from the member's start
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip local file header: signature ... name and extra lengths
_PADDING = 0xD935  # the extra field id zipalign pads with (any id a reader does not know is skipped)
_ZIP64_EXTRA = 20  # the local header's zip64 field: id, size, two 64-bit sizes


class SnapshotUnusable(Exception):
    """A file that is not a snapshot this release can read."""


# Why a snapshot could not be read: a bad file, the store (OSError), an fsspec
# protocol whose package is not installed (ImportError), a malformed URL.
UNREADABLE: tuple[type[Exception], ...] = (SnapshotUnusable, OSError, ImportError, ValueError)


@dataclasses.dataclass(frozen=True, slots=True)
class Stored:
    """A snapshot as read: the base ready to serve, the other entries, and where to catch up from."""

    position: changes.Position
    base: Base
    others: list[changes.ChangedRow]


def _row_out(row: changes.ChangedRow) -> list[Any]:
    return [v.isoformat() if isinstance(v, datetime) else v for v in dataclasses.astuple(row)]


def _row_in(values: list[Any]) -> changes.ChangedRow:
    fields = dataclasses.fields(changes.ChangedRow)
    parsed: list[Any] = [
        datetime.fromisoformat(v) if v is not None and "datetime" in str(f.type) else v
        for f, v in zip(fields, values, strict=True)
    ]
    return changes.ChangedRow(*parsed)


def _position_in(values: dict[str, Any]) -> changes.Position:
    parsed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return changes.Position(**parsed)


def write(url: str, snapshot: changes.Snapshot) -> int:
    """Build `snapshot`'s base and write it to `url`; return the file's size in bytes.

    Blocking, and seconds of sorting for millions of entries: run it in a thread.
    """
    s = snapshot
    base = Base.build(Columns(s.tenants, s.tenant, s.keys, s.hi, s.lo, s.expires))
    return write_base(url, s.position, base, s.others)


def write_base(url: str, position: changes.Position, base: Base, others: list[changes.ChangedRow]) -> int:
    """Write a built base, the other entries and their position to `url`; return its size in bytes. Blocking."""
    tenants, arrays = base.arrays()
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "position": dataclasses.asdict(position),
        "tenants": tenants,
        "entries": len(base),
        "others": [_row_out(r) for r in others],
    }
    fs, path = fsspec.core.url_to_fs(url)
    partial = path + ".partial"
    with fs.open(partial, "wb") as out:
        _write_npz(out, {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays})
    fs.mv(partial, path)
    return int(fs.size(path))


def _write_npz(out: IO[bytes], arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    """What numpy.savez writes, with each member's start padded to _ALIGN in the file (as zipalign does)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            # The local header ends where the member starts: pad its extra field up to the alignment.
            header_end = out.tell() + _LOCAL_HEADER.size + len(info.filename.encode()) + _ZIP64_EXTRA + 4
            info.extra = struct.pack("<HH", _PADDING, -header_end % _ALIGN) + bytes(-header_end % _ALIGN)
            with z.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def read(url: str) -> Stored | None:
    """The snapshot at `url`, None when there is none. Blocking: run it in a thread.

    Raises SnapshotUnusable for a file this release cannot read, OSError when
    the store cannot be read.
    """
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return None
    # The whole file in one buffer that the arrays then live in: one read
    # (a remote store answers a few large reads far faster than many small
    # ones; a local file is read straight into it, no copy). Read, not the
    # file mapped: mapped pages can be evicted and faulted back in during a
    # call. Anonymous memory of its own, not numpy's: numpy asks for huge
    # pages, whose compaction made this read take 0.1 to 0.8 s of CPU on a
    # busy machine, against a steady 0.16 s (10M entries).
    with fs.open(path, "rb") as source:
        # The size of the file opened: another may replace it meanwhile (moved there, as write() does).
        size = source.seek(0, io.SEEK_END)
        if not size:
            raise SnapshotUnusable(f"{url}: an empty file")
        data = memoryview(mmap.mmap(-1, size))
        source.seek(0)
        got = 0
        while got < len(data):
            n = source.readinto(data[got:])
            if not n:
                raise SnapshotUnusable(f"{url}: shorter than its size: changed while read")
            got += n
    try:
        members = _members(data)
        meta = json.loads(bytes(members["meta"]))
        if meta.get("format") != FORMAT or meta.get("version") not in (1, VERSION):
            raise SnapshotUnusable(
                f"{url}: format {meta.get('format')!r} version {meta.get('version')!r},"
                f" this release reads {FORMAT!r} versions 1 and {VERSION}"
            )
        tenants = meta["tenants"]
        if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
            raise ValueError("tenants: not a list of names")
        position = _position_in(meta["position"])
        others = [_row_in(r) for r in meta["others"]]
        if meta["version"] == 1:
            base = Base.build(Columns(tenants, *(members[name] for name in _V1_ARRAYS)))
        else:
            base = Base.from_arrays(tenants, members)
            if len(base) != meta["entries"]:
                raise ValueError(f"{len(base)} entries, the meta says {meta['entries']}")
    except (ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, struct.error) as exc:
        raise SnapshotUnusable(f"{url}: not a snapshot ({type(exc).__name__}: {exc})") from None
    return Stored(position, base, others)


def _members(data: memoryview) -> dict[str, npt.NDArray[Any]]:
    """The arrays of an uncompressed .npz held in `data`: views into it where aligned, else copies."""
    members: dict[str, npt.NDArray[Any]] = {}
    with zipfile.ZipFile(_Reader(data)) as z:
        infos = z.infolist()
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
            raise ValueError(f"{info.filename}: not an uncompressed .npy member")
        signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(data, info.header_offset)
        if signature != b"PK\x03\x04":
            raise ValueError(f"{info.filename}: no local header where the directory says")
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        member = data[start : start + info.file_size]
        if len(member) != info.file_size or zlib.crc32(member) != info.CRC:
            raise ValueError(f"{info.filename}: damaged (its CRC-32 differs)")
        members[info.filename.removesuffix(".npy")] = _array(member)
    return members


class _Reader(io.RawIOBase):
    """A file over a buffer, for zipfile to read the directory from (io.BytesIO would copy the buffer)."""

    def __init__(self, data: memoryview) -> None:
        super().__init__()
        self._data = data
        self._at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._at = max(0, offset + (0, self._at, len(self._data))[whence])
        return self._at

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._at : self._at + len(buffer)]
        memoryview(buffer).cast("B")[: len(chunk)] = chunk
        self._at += len(chunk)
        return len(chunk)


def _array(member: memoryview) -> npt.NDArray[Any]:
    head = io.BytesIO(member[: 1 << 17])
    version = np.lib.format.read_magic(head)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(head)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(head)
    if dtype.hasobject or fortran:
        raise ValueError("an array of objects or in Fortran order")
    count = int(np.prod(shape, dtype=np.int64))
    offset = head.tell()
    if offset + count * dtype.itemsize != len(member):
        raise ValueError("an .npy member of another size than its header says")
    array = np.frombuffer(member, dtype, count, offset).reshape(shape)
    # Another writer's member may start anywhere: a misaligned array is copied (slow to search, and C wants aligned).
    return array if array.flags.aligned else array.copy()
