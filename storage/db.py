"""Connection types shared by the queries."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A query runs on a plain connection or on one borrowed from a pool.
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
