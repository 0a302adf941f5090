"""Starting from a snapshot file (`screening snapshot`, --snapshot-url), then catching up from its position."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import fsspec
import numpy as np
import pytest

from screening.app.main import main
from screening.app.service import App
from screening.index.compact import (
    CALL_TYPE_MASK,
    ENABLED,
    EXPIRES,
    NEVER,
    Base,
    Columns,
    format_id,
    key_number,
)
from screening.sync import snapshots
from screening.v1 import screening_pb2 as pb
from storage import changes
from tests.support import Clients, StartServer, create, screen, until_verdict, wait_until

BLOCK, ALLOW = pb.VERDICT_BLOCK, pb.VERDICT_ALLOW
IN = pb.DIRECTION_INBOUND


async def take_snapshot(dsn: str, to: Path) -> None:
    """`screening snapshot --from DSN --to PATH`, as an operator runs it."""
    assert await asyncio.to_thread(main, ["snapshot", "--from", dsn, "--to", str(to)]) == 0


async def answers(clients: Clients, numbers: list[str], tenant: str = "acme") -> list[tuple[int, str]]:
    got = await clients.screening.ScreenNumbers(
        pb.ScreenNumbersRequest(tenant_id=tenant, direction=IN, numbers=numbers)
    )
    return [(r.verdict, r.matched_id) for r in got.results]


async def test_a_replica_starts_from_a_snapshot_catches_up_and_answers_as_one_loaded_from_the_database(
    start_server: StartServer, connect: Callable[[App], Clients], dsn: str, tmp_path: Path
) -> None:
    writer = connect(await start_server())
    exact = [await create(writer, f"+4420710{i:02d}") for i in range(20)]
    prefix = await create(writer, "+4420799", match_kind=pb.MATCH_KIND_PREFIX)
    await create(writer, "+4420711", match_kind=pb.MATCH_KIND_EXACT, tenant="other")
    gone = exact.pop()
    await writer.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=gone.id))
    snapshot = tmp_path / "screening.snapshot"
    await take_snapshot(dsn, snapshot)
    # Changes after the snapshot reach the new replica through the feed, before it serves.
    later = await create(writer, "+4420720")
    await writer.admin.DeleteForbiddenNumber(pb.DeleteForbiddenNumberRequest(tenant_id="acme", id=exact[0].id))

    from_file = await start_server(snapshot_url=f"file://{snapshot}")
    from_database = await start_server()
    assert from_file.replica.loaded_from == "snapshot" and from_database.replica.loaded_from == "database"
    numbers = [e.number for e in exact] + [gone.number, later.number, "+442079912345", "+15550000"]
    file_answers = await answers(connect(from_file), numbers)
    assert file_answers == await answers(connect(from_database), numbers)
    assert file_answers[0] == (ALLOW, "")  # deleted after the snapshot
    assert file_answers[1] == (BLOCK, exact[1].id)
    assert file_answers[len(exact)] == (ALLOW, "")  # deleted before it
    assert file_answers[len(exact) + 1] == (BLOCK, later.id)
    assert file_answers[len(exact) + 2] == (BLOCK, prefix.id)
    assert (await screen(connect(from_file), "+4420711", tenant="other")).verdict == BLOCK
    # And it follows on as any replica does.
    newest = await create(writer, "+4420730")
    await until_verdict(connect(from_file), newest.number, BLOCK)


async def test_a_snapshot_older_than_the_purged_tombstones_or_unreadable_means_a_load_from_the_database(
    start_server: StartServer,
    connect: Callable[[App], Clients],
    dsn: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    writer = connect(await start_server())
    kept = await create(writer, "+4420740")
    snapshot = tmp_path / "old.snapshot"
    await take_snapshot(dsn, snapshot)
    conn = await asyncpg.connect(dsn)
    try:
        # What a tombstone purge past the snapshot's position leaves behind (after --tombstone-retention).
        await conn.execute("UPDATE sync_meta SET purged_xid = pg_current_xact_id()")
    finally:
        await conn.close()
    stale = await start_server(snapshot_url=str(snapshot))
    assert stale.replica.loaded_from == "database"
    assert "purged" in caplog.text
    assert (await screen(connect(stale), kept.number)).verdict == BLOCK

    junk = tmp_path / "junk.snapshot"
    junk.write_bytes(b"not a snapshot at all")
    unreadable = await start_server(snapshot_url=str(junk))
    assert unreadable.replica.loaded_from == "database"
    assert "not a snapshot" in caplog.text
    missing = await start_server(snapshot_url=str(tmp_path / "nothing-here"))
    assert missing.replica.loaded_from == "database"


async def load(dsn: str) -> changes.Snapshot:
    conn = await asyncpg.connect(dsn)
    try:
        return await changes.load_snapshot(conn)
    finally:
        await conn.close()


def entries_of(snapshot: changes.Snapshot) -> set[tuple[str, str, str, int, bool, float]]:
    """(id, tenant, number, call type, enabled, expiry) of each EXACT entry a load read from the database."""
    s = snapshot
    return {
        (
            format_id(int(s.hi[i]), int(s.lo[i])),
            s.tenants[int(s.tenant[i])],
            key_number(int(s.keys[i])),
            int(s.keys[i]) & CALL_TYPE_MASK,
            bool(int(s.keys[i]) & ENABLED),
            float(s.expires[i]) if int(s.keys[i]) & EXPIRES else NEVER,
        )
        for i in range(len(s.keys))
    }


def entries_in(base: Base) -> set[tuple[str, str, str, int, bool, float]]:
    return {(*e[:3], e[3].value, *e[4:]) for e in map(base.entry_at, range(len(base)))}


async def test_a_snapshot_holds_the_built_base_and_round_trips_every_entry(
    dsn: str, start_server: StartServer, tmp_path: Path
) -> None:
    app = await start_server()
    await create_many(app, dsn)
    path = tmp_path / "s.snapshot"
    await take_snapshot(dsn, path)
    direct = await load(dsn)
    read = await asyncio.to_thread(snapshots.read, str(path))
    assert read is not None
    assert read.position == direct.position and read.others == direct.others
    base = read.base
    assert len(base) == len(direct.keys) == 3000
    got = entries_in(base)
    assert got == entries_of(direct)
    assert sum(1 for e in got if e[5] != NEVER) == 750 and sum(1 for e in got if not e[4]) == 600
    # The base as a load builds it, array for array, and by id too.
    names, arrays = base.arrays()
    built_names, built = Base.build(
        Columns(direct.tenants, direct.tenant, direct.keys, direct.hi, direct.lo, direct.expires)
    ).arrays()
    assert names == built_names == [f"t{i}" for i in range(7)]
    for name, array in built.items():
        assert arrays[name].dtype == array.dtype and (arrays[name] == array).all(), name
        # Used where they lie in the buffer the file was read into: no copy, aligned for the C searcher.
        assert not arrays[name].flags.owndata and arrays[name].flags.aligned, name
    for pos in range(0, 3000, 97):
        hi, lo = (int(half) for half in base.ids[pos])
        assert base.position_of_id(hi, lo) == pos
    # Still an .npz that numpy reads, with the version and what a reader validates in its meta.
    with np.load(path) as members:
        meta = json.loads(bytes(members["meta"]))
        assert (members["keys"] == built["keys"]).all()
    assert meta["format"] == snapshots.FORMAT and meta["version"] == 2 and meta["entries"] == 3000
    assert meta["position"]["cluster"] == direct.position.cluster


async def test_a_cold_start_from_a_snapshot_answers_every_tenant_as_a_database_load(
    dsn: str, start_server: StartServer, connect: Callable[[App], Clients], tmp_path: Path
) -> None:
    app = await start_server()
    await create_many(app, dsn)
    path = tmp_path / "s.snapshot"
    await take_snapshot(dsn, path)
    from_file, from_database = await start_server(snapshot_url=str(path)), await start_server()
    assert from_file.replica.loaded_from == "snapshot" and from_database.replica.loaded_from == "database"
    numbers = [f"+1555{i:07d}" for i in range(0, 3002)]
    verdicts = set()
    for tenant in [f"t{i}" for i in range(7)] + ["nobody"]:
        for at in range(0, len(numbers), 500):
            batch = numbers[at : at + 500]
            got = await answers(connect(from_file), batch, tenant)
            assert got == await answers(connect(from_database), batch, tenant), tenant
            verdicts.update(verdict for verdict, _ in got)
    assert verdicts == {BLOCK, ALLOW}


def damaged(path: Path, to: Path, how: str) -> Path:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        del data[len(data) // 2 :]
    else:  # one bit flipped in the middle of the keys
        with np.load(path) as members:
            keys = members["keys"]
        at = data.find(keys[len(keys) // 2 : len(keys) // 2 + 4].tobytes())
        assert at > 0
        data[at] ^= 1
    to.write_bytes(data)
    return to


@pytest.mark.parametrize(("how", "why"), [("truncated", "not a zip file"), ("flipped", "CRC-32")])
async def test_a_damaged_snapshot_means_a_load_from_the_database(
    dsn: str,
    start_server: StartServer,
    connect: Callable[[App], Clients],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    how: str,
    why: str,
) -> None:
    caplog.set_level(logging.INFO)
    app = await start_server()
    await create_many(app, dsn)
    path = tmp_path / "s.snapshot"
    await take_snapshot(dsn, path)
    bad = damaged(path, tmp_path / "bad.snapshot", how)
    with pytest.raises(snapshots.SnapshotUnusable, match=why):
        await asyncio.to_thread(snapshots.read, str(bad))
    replica = await start_server(snapshot_url=str(bad))
    assert replica.replica.loaded_from == "database"
    assert "snapshot not used" in caplog.text
    assert len(replica.replica.index) == 3000
    assert (await answers(connect(replica), ["+15550000011"], "t4"))[0][0] == BLOCK


def small_base() -> Base:
    entries = [
        (
            str(uuid.UUID(int=(i * 7919) << 64 | i)),
            f"t{i % 3}",
            f"+1555{i:07d}",
            1 + i % 3,
            i % 5 != 0,
            2e9 if i % 4 == 0 else NEVER,
        )
        for i in range(1, 400)
    ]
    return Base.build(Columns.of_entries(entries))


def test_a_base_from_its_arrays_answers_as_the_built_one() -> None:
    built = small_base()
    names, arrays = built.arrays()
    again = Base.from_arrays(names, arrays)
    for base in (built, again):
        assert base.searcher().hit("t1", "+15550000001", 1, 0.0, frozenset()) is not None
    for i in range(0, 420, 7):
        number, tenant = f"+1555{i:07d}", f"t{i % 3}"
        for direction in (1, 2):
            assert again.searcher().hit(tenant, number, direction, 1e9, frozenset()) == built.searcher().hit(
                tenant, number, direction, 1e9, frozenset()
            )
            assert again.hit(tenant, number, direction, 3e9, frozenset()) == built.hit(
                tenant, number, direction, 3e9, frozenset()
            )


def tampered(arrays: dict[str, Any], name: str) -> dict[str, Any]:
    changed = {k: v.copy() for k, v in arrays.items()}
    a = changed[name]
    if name == "table":
        a[len(a) // 2] = len(arrays["keys"]) + 1
    elif name == "keys":
        a[[10, 11]] = a[[11, 10]]
    elif name == "by_id":
        a[0] = len(a)
    elif name == "exp_pos":
        a[-1] = a[-1] + 1  # the last key with an expiry is not its neighbour
    elif name == "starts":
        a[1] = a[2]
    else:  # another type
        changed[name] = a.astype(np.int32)
    return changed


@pytest.mark.parametrize("name", ["table", "keys", "by_id", "exp_pos", "starts", "ids"])
def test_arrays_no_base_could_have_are_refused(name: str) -> None:
    """What a CRC-32 cannot catch (a writer's bug): nothing unchecked reaches the C searcher."""
    names, arrays = small_base().arrays()
    with pytest.raises(ValueError, match=name):
        Base.from_arrays(names, tampered(arrays, name))
    with pytest.raises(ValueError, match="distinct"):
        Base.from_arrays(["t0", "t0", "t2"], arrays)


class Objects(fsspec.AbstractFileSystem):
    """An object store as fsspec's s3fs and gcsfs are: buffered files that cannot seek while written."""

    protocol = "objects"
    blobs: ClassVar[dict[str, bytes]] = {}

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Blob:
        return Blob(self, path, mode)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path not in self.blobs:
            raise FileNotFoundError(path)
        return {"name": path, "size": len(self.blobs[path]), "type": "file"}

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        self.blobs[self._strip_protocol(path2)] = self.blobs.pop(self._strip_protocol(path1))


class Blob(fsspec.spec.AbstractBufferedFile):  # type: ignore[misc]
    def _initiate_upload(self) -> None:
        Objects.blobs[self.path] = b""

    def _upload_chunk(self, final: bool = False) -> bool:
        Objects.blobs[self.path] += self.buffer.getvalue()
        return True

    def _fetch_range(self, start: int, end: int) -> bytes:
        return Objects.blobs[self.path][start:end]


def test_a_snapshot_in_an_object_store_round_trips() -> None:
    fsspec.register_implementation("objects", Objects, clobber=True)
    base = small_base()
    position = changes.Position(900, 12345, 905, (901, 903))
    assert snapshots.write_base("objects://bucket/s.snapshot", position, base, []) > 0
    with zipfile.ZipFile(io.BytesIO(Objects.blobs["bucket/s.snapshot"])) as z:
        assert all(info.flag_bits & 0x08 for info in z.infolist())  # written with data descriptors: no seeking
    read = snapshots.read("objects://bucket/s.snapshot")
    assert read is not None and read.position == position and read.others == []
    assert entries_in(read.base) == entries_in(base)
    for name, array in read.base.arrays()[1].items():
        assert not array.flags.owndata and array.flags.aligned, name
    assert snapshots.read("objects://bucket/none") is None


async def test_a_version_1_snapshot_is_still_read_and_sorted_as_a_load(
    dsn: str, start_server: StartServer, connect: Callable[[App], Clients], tmp_path: Path
) -> None:
    app = await start_server()
    await create_many(app, dsn)
    direct = await load(dsn)
    meta = {
        "format": snapshots.FORMAT,
        "version": 1,
        "position": dataclasses.asdict(direct.position),
        "tenants": direct.tenants,
        "others": [],
    }
    path = tmp_path / "v1.snapshot"
    columns = {name: getattr(direct, name) for name in ("tenant", "keys", "hi", "lo", "expires")}
    np.savez(path.open("wb"), meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **columns)
    read = await asyncio.to_thread(snapshots.read, str(path))
    assert read is not None and read.position == direct.position
    assert entries_in(read.base) == entries_of(direct)
    replica = await start_server(snapshot_url=str(path))
    assert replica.replica.loaded_from == "snapshot" and len(replica.replica.index) == 3000
    assert (await answers(connect(replica), ["+15550000011"], "t4"))[0][0] == BLOCK


async def create_many(app: App, dsn: str) -> None:
    """A few thousand entries straight into the table, some expiring, some disabled."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO forbidden_numbers (tenant_id, number, match_kind, call_type, enabled, expire_time)
               SELECT 't' || (i % 7), '+1555' || lpad(i::text, 7, '0'), 1, 1 + i % 3, i % 5 <> 0,
                      CASE WHEN i % 4 = 0 THEN now() + interval '1 day' END
               FROM generate_series(1, 3000) AS i"""
        )
    finally:
        await conn.close()
    await wait_until(lambda: len(app.replica.index) >= 3000, within=10)
