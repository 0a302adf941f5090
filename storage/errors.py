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
