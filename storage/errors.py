"""Which database failures mean "the database is not there right now"."""

from __future__ import annotations

import asyncpg

# Caught by class, never by message text.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash recovery
    asyncpg.exceptions.InterfaceError,  # connection closed under us
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
)

# What a background loop (migrations, first load, catch-up) retries on.
RETRYABLE: tuple[type[BaseException], ...] = (*UNREACHABLE, asyncpg.PostgresError)


class StorageError(Exception):
    """A query's answer the layers above turn into their own errors."""


class RowNotFound(StorageError):
    def __init__(self, kind: str, key: str, tenant_id: str) -> None:
        super().__init__(f"{kind} {key!r} not found in tenant {tenant_id!r}")
        self.kind = kind
        self.key = key
        self.tenant_id = tenant_id


class DuplicateEntry(StorageError):
    """The tenant already has a live entry for this number and match kind."""

    def __init__(self, tenant_id: str, number: str, match_kind: int) -> None:
        super().__init__(f"tenant {tenant_id!r} already has an entry ({match_kind}) for number {number!r}")
        self.tenant_id = tenant_id
        self.number = number
        self.match_kind = match_kind


class StaleRevision(StorageError):
    """The caller's revision of an entry is not the stored one."""

    def __init__(self, entry_id: str, expected: int, current: int) -> None:
        super().__init__(f"entry {entry_id!r} is at revision {current}, not {expected}")
        self.entry_id = entry_id
        self.expected = expected
        self.current = current


class NoPrimary(ConnectionError):
    """This replica was given no primary database, so what needs one (a write, a migration) cannot be done here.

    A ConnectionError, so everything that treats an unreachable database as
    UNAVAILABLE treats this the same; the message names what to configure.
    """


class SchemaNotReady(StorageError):
    """The database a replica without a primary reads has no schema yet, or an older one than this release's."""
