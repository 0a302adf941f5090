"""A forbidden number's fields, declared once.

Everything else is derived from this table or checked against it by a test
(tests/test_fields.py): the domain dataclass, the proto message and its
conversion, the storage row and its SQL column lists, the change feed's row
and the index entry (the `screened` fields), the update mask, the audit
trail, and the columns of the import template and of exports.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from screening.domain.model import Action, CallType, MatchKind


class Kind(enum.Enum):
    TEXT = "text"
    INT = "int"
    ENUM = "enum"
    BOOL = "bool"
    TIME = "time"


@dataclass(frozen=True, slots=True)
class EntryField:
    name: str
    kind: Kind
    enum: type[enum.IntEnum] | None = None
    # Set by create and update (an update_mask path); otherwise output only.
    writable: bool = False
    # Its place among the import template's and the exports' columns; None: not a column.
    column: int | None = None
    # ScreenCall reads it: the change feed carries it into the index.
    screened: bool = False


ENTRY_FIELDS: tuple[EntryField, ...] = (
    EntryField("id", Kind.TEXT, screened=True),
    EntryField("tenant_id", Kind.TEXT, screened=True),
    EntryField("number", Kind.TEXT, writable=True, column=0, screened=True),
    EntryField("match_kind", Kind.ENUM, MatchKind, writable=True, column=2, screened=True),
    EntryField("call_type", Kind.ENUM, CallType, writable=True, column=1, screened=True),
    EntryField("enabled", Kind.BOOL, writable=True, column=3, screened=True),
    EntryField("note", Kind.TEXT, writable=True, column=4),
    EntryField("expire_time", Kind.TIME, writable=True, column=5, screened=True),
    # BLOCK (the default) or ALLOW: an allow-exception to a broader entry.
    EntryField("action", Kind.ENUM, Action, writable=True, column=6, screened=True),
    EntryField("create_time", Kind.TIME),
    EntryField("update_time", Kind.TIME),
    EntryField("etag", Kind.TEXT),
    # Calls the entry decided, summed over every replica, and the last one: counted, never written.
    EntryField("hit_count", Kind.INT),
    EntryField("last_hit_time", Kind.TIME),
)
BY_NAME = {f.name: f for f in ENTRY_FIELDS}
# The update_mask paths, in declaration order.
UPDATABLE = tuple(f.name for f in ENTRY_FIELDS if f.writable)
# The import template's header, and the columns of exports, in their order.
COLUMNS = tuple(f.name for f in sorted((f for f in ENTRY_FIELDS if f.column is not None), key=lambda f: f.column or 0))
SCREENED = tuple(f.name for f in ENTRY_FIELDS if f.screened)
