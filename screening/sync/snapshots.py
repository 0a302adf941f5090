"""Snapshot files: the first load's data at one position, written once and read by many replicas.

A snapshot holds what storage.changes.load_snapshot reads from PostgreSQL
(the EXACT entries as columns, the other entries as rows) with the position
it is complete up to, whose `cluster` is the cluster's system identifier
(pg_control_system()). `screening snapshot` writes one through fsspec, so a
path, file://, s3://, gs://... all work; a replica started with
--snapshot-url builds its index from it instead of reading every entry from
the database, then catches up from its position through the change feed
like after any load. When the feed cannot continue from there (another
cluster; tombstones purged past it: a file older than
--tombstone-retention) the replica loads from the database as without a
file.

The format is a thin, versioned wrapper: one uncompressed .npz (a zip of
.npy arrays) whose member `meta` is JSON (format, version, position,
tenants, the other entries), written next to its final name and then moved
there, so a reader never sees half a file.
"""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import datetime
from typing import Any

import fsspec
import numpy as np

from storage import changes

FORMAT = "screening-snapshot"
VERSION = 1
_ARRAYS = ("tenant", "keys", "hi", "lo", "expires")


class SnapshotUnusable(Exception):
    """A file that is not a snapshot this release can read."""


# Why a snapshot could not be read: a bad file, the store (OSError), an fsspec
# protocol whose package is not installed (ImportError), a malformed URL.
UNREADABLE: tuple[type[Exception], ...] = (SnapshotUnusable, OSError, ImportError, ValueError)


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
    """Write `snapshot` to `url`; return its size in bytes. Blocking: run it in a thread."""
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "position": dataclasses.asdict(snapshot.position),
        "tenants": snapshot.tenants,
        "others": [_row_out(r) for r in snapshot.others],
    }
    fs, path = fsspec.core.url_to_fs(url)
    partial = path + ".partial"
    with fs.open(partial, "wb") as out:
        np.savez(
            out,
            meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            **{name: getattr(snapshot, name) for name in _ARRAYS},
        )
    fs.mv(partial, path)
    return int(fs.size(path))


def read(url: str) -> changes.Snapshot | None:
    """The snapshot at `url`, None when there is none. Blocking: run it in a thread.

    Raises SnapshotUnusable for a file this release cannot read, OSError when
    the store cannot be read.
    """
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as source:
        # One read of the whole file: a remote store answers a few large reads far faster than many small ones.
        data = source.read()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as members:
            meta = json.loads(bytes(members["meta"]))
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise SnapshotUnusable(
                    f"{url}: format {meta.get('format')!r} version {meta.get('version')!r},"
                    f" this release reads {FORMAT!r} version {VERSION}"
                )
            arrays = {name: members[name] for name in _ARRAYS}
    except (ValueError, KeyError, OSError, EOFError) as exc:
        raise SnapshotUnusable(f"{url}: not a snapshot ({type(exc).__name__}: {exc})") from None
    return changes.Snapshot(
        _position_in(meta["position"]),
        list(meta["tenants"]),
        arrays["tenant"],
        arrays["keys"],
        arrays["hi"],
        arrays["lo"],
        arrays["expires"],
        [_row_in(r) for r in meta["others"]],
    )
