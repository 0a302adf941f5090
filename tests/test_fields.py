"""A forbidden number's fields are declared once (screening/domain/fields.py); everything else must agree."""

import dataclasses
import enum

from google.protobuf.descriptor import FieldDescriptor

from screening.cli import values
from screening.domain import model
from screening.domain.fields import COLUMNS, ENTRY_FIELDS, SCREENED, UPDATABLE, Kind
from screening.files.sheet import REQUIRED
from screening.index.rules import IndexEntry
from screening.v1 import screening_pb2 as pb
from storage.changes import ChangedRow
from storage.rows import SERVER_COLUMNS, EntryRow, EntryValues, columns

NAMES = [f.name for f in ENTRY_FIELDS]


def test_the_domain_type_has_exactly_the_declared_fields() -> None:
    assert [f.name for f in dataclasses.fields(model.ForbiddenNumber)] == NAMES


def test_the_proto_message_carries_each_field_with_its_kind() -> None:
    message = pb.ForbiddenNumber.DESCRIPTOR
    for field in ENTRY_FIELDS:
        proto = message.fields_by_name[field.name]
        if field.kind is Kind.TEXT:
            assert proto.type == FieldDescriptor.TYPE_STRING, field.name
        elif field.kind is Kind.INT:
            assert proto.type == FieldDescriptor.TYPE_INT64, field.name
        elif field.kind is Kind.BOOL:
            assert proto.type == FieldDescriptor.TYPE_BOOL, field.name
        elif field.kind is Kind.TIME:
            assert proto.message_type.full_name == "google.protobuf.Timestamp", field.name
        else:
            assert field.enum is not None
            assert proto.enum_type.name == field.enum.__name__, field.name
    # Output-only fields computed at answer time.
    assert set(message.fields_by_name) - set(NAMES) == {"status"}


def test_the_storage_row_has_the_declared_fields_with_the_revision_for_the_etag() -> None:
    assert columns(EntryRow) == tuple("revision" if n == "etag" else n for n in NAMES)
    assert columns(EntryValues) == UPDATABLE
    assert set(columns(EntryRow)) - set(UPDATABLE) == set(SERVER_COLUMNS)


def test_the_change_feed_and_the_index_carry_the_screened_fields() -> None:
    assert columns(ChangedRow) == (*SCREENED, "deleted")
    index = tuple("expire_time" if f.name == "expires_at" else f.name for f in dataclasses.fields(IndexEntry))
    assert index == SCREENED


def test_file_columns_and_the_update_mask() -> None:
    assert COLUMNS == ("number", "call_type", "match_kind", "enabled", "note", "expire_time", "action")
    assert set(REQUIRED) <= set(COLUMNS)
    assert set(UPDATABLE) == set(COLUMNS)


def _proto_words(descriptor) -> dict[str, int]:
    prefix = descriptor.values[0].name.removesuffix("UNSPECIFIED")
    return {v.name.removeprefix(prefix): v.number for v in descriptor.values if v.number}


def test_each_domain_enum_mirrors_its_proto_enum() -> None:
    mirrored = [m for m in vars(model).values() if isinstance(m, type) and issubclass(m, enum.IntEnum)]
    assert {m.__name__ for m in mirrored} >= {"CallType", "MatchKind", "Direction", "Verdict", "EntryStatus"}
    for domain_enum in mirrored:
        descriptor = pb.DESCRIPTOR.enum_types_by_name[domain_enum.__name__]
        assert {m.name: m.value for m in domain_enum} == _proto_words(descriptor), domain_enum.__name__


def test_screenctl_words_come_from_the_proto() -> None:
    assert {w.lower(): n for w, n in _proto_words(pb.CallType.DESCRIPTOR).items()} == values.CALL_TYPES
    assert {w.lower(): n for w, n in _proto_words(pb.MatchKind.DESCRIPTOR).items()} == values.MATCH_KINDS
    assert {w.lower(): n for w, n in _proto_words(pb.Direction.DESCRIPTOR).items()} == values.DIRECTIONS
    assert [m.value for m in values.CallTypeName] == list(values.CALL_TYPES)
    assert [m.value for m in values.MatchKindName] == list(values.MATCH_KINDS)
    assert [m.value for m in values.DirectionName] == list(values.DIRECTIONS)
