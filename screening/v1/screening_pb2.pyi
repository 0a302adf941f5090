import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_INBOUND: _ClassVar[Direction]
    DIRECTION_OUTBOUND: _ClassVar[Direction]

class CallType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_TYPE_UNSPECIFIED: _ClassVar[CallType]
    CALL_TYPE_INBOUND: _ClassVar[CallType]
    CALL_TYPE_OUTBOUND: _ClassVar[CallType]
    CALL_TYPE_BOTH: _ClassVar[CallType]

class MatchKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCH_KIND_UNSPECIFIED: _ClassVar[MatchKind]
    MATCH_KIND_EXACT: _ClassVar[MatchKind]
    MATCH_KIND_PREFIX: _ClassVar[MatchKind]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ALLOW: _ClassVar[Verdict]
    VERDICT_BLOCK: _ClassVar[Verdict]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_BLOCK: _ClassVar[Action]
    ACTION_ALLOW: _ClassVar[Action]

class ScreenReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCREEN_REASON_UNSPECIFIED: _ClassVar[ScreenReason]
    SCREEN_REASON_BLOCK_ENTRY: _ClassVar[ScreenReason]
    SCREEN_REASON_ALLOW_ENTRY: _ClassVar[ScreenReason]
    SCREEN_REASON_NO_ENTRY: _ClassVar[ScreenReason]
    SCREEN_REASON_ONLY_DISABLED: _ClassVar[ScreenReason]
    SCREEN_REASON_ONLY_EXPIRED: _ClassVar[ScreenReason]
    SCREEN_REASON_OTHER_DIRECTION: _ClassVar[ScreenReason]
    SCREEN_REASON_EMERGENCY_NUMBER: _ClassVar[ScreenReason]
    SCREEN_REASON_WITHHELD: _ClassVar[ScreenReason]

class WithheldPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WITHHELD_POLICY_UNSPECIFIED: _ClassVar[WithheldPolicy]
    WITHHELD_POLICY_ALLOW: _ClassVar[WithheldPolicy]
    WITHHELD_POLICY_BLOCK: _ClassVar[WithheldPolicy]

class ImportMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_MODE_UNSPECIFIED: _ClassVar[ImportMode]
    IMPORT_MODE_UPSERT: _ClassVar[ImportMode]
    IMPORT_MODE_INSERT_ONLY: _ClassVar[ImportMode]

class ImportJobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_JOB_STATE_UNSPECIFIED: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_RUNNING: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_SUCCEEDED: _ClassVar[ImportJobState]
    IMPORT_JOB_STATE_FAILED: _ClassVar[ImportJobState]

class FileFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_FORMAT_UNSPECIFIED: _ClassVar[FileFormat]
    FILE_FORMAT_CSV: _ClassVar[FileFormat]
    FILE_FORMAT_XLSX: _ClassVar[FileFormat]

class EntryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_STATUS_UNSPECIFIED: _ClassVar[EntryStatus]
    ENTRY_STATUS_ACTIVE: _ClassVar[EntryStatus]
    ENTRY_STATUS_DISABLED: _ClassVar[EntryStatus]
    ENTRY_STATUS_EXPIRED: _ClassVar[EntryStatus]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_INBOUND: Direction
DIRECTION_OUTBOUND: Direction
CALL_TYPE_UNSPECIFIED: CallType
CALL_TYPE_INBOUND: CallType
CALL_TYPE_OUTBOUND: CallType
CALL_TYPE_BOTH: CallType
MATCH_KIND_UNSPECIFIED: MatchKind
MATCH_KIND_EXACT: MatchKind
MATCH_KIND_PREFIX: MatchKind
VERDICT_UNSPECIFIED: Verdict
VERDICT_ALLOW: Verdict
VERDICT_BLOCK: Verdict
ACTION_UNSPECIFIED: Action
ACTION_BLOCK: Action
ACTION_ALLOW: Action
SCREEN_REASON_UNSPECIFIED: ScreenReason
SCREEN_REASON_BLOCK_ENTRY: ScreenReason
SCREEN_REASON_ALLOW_ENTRY: ScreenReason
SCREEN_REASON_NO_ENTRY: ScreenReason
SCREEN_REASON_ONLY_DISABLED: ScreenReason
SCREEN_REASON_ONLY_EXPIRED: ScreenReason
SCREEN_REASON_OTHER_DIRECTION: ScreenReason
SCREEN_REASON_EMERGENCY_NUMBER: ScreenReason
SCREEN_REASON_WITHHELD: ScreenReason
WITHHELD_POLICY_UNSPECIFIED: WithheldPolicy
WITHHELD_POLICY_ALLOW: WithheldPolicy
WITHHELD_POLICY_BLOCK: WithheldPolicy
IMPORT_MODE_UNSPECIFIED: ImportMode
IMPORT_MODE_UPSERT: ImportMode
IMPORT_MODE_INSERT_ONLY: ImportMode
IMPORT_JOB_STATE_UNSPECIFIED: ImportJobState
IMPORT_JOB_STATE_RUNNING: ImportJobState
IMPORT_JOB_STATE_SUCCEEDED: ImportJobState
IMPORT_JOB_STATE_FAILED: ImportJobState
FILE_FORMAT_UNSPECIFIED: FileFormat
FILE_FORMAT_CSV: FileFormat
FILE_FORMAT_XLSX: FileFormat
ENTRY_STATUS_UNSPECIFIED: EntryStatus
ENTRY_STATUS_ACTIVE: EntryStatus
ENTRY_STATUS_DISABLED: EntryStatus
ENTRY_STATUS_EXPIRED: EntryStatus

class ForbiddenNumber(_message.Message):
    __slots__ = ("id", "tenant_id", "number", "match_kind", "call_type", "enabled", "note", "expire_time", "create_time", "update_time", "etag", "status", "action", "hit_count", "last_hit_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    MATCH_KIND_FIELD_NUMBER: _ClassVar[int]
    CALL_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HIT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_HIT_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    number: str
    match_kind: MatchKind
    call_type: CallType
    enabled: bool
    note: str
    expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    status: EntryStatus
    action: Action
    hit_count: int
    last_hit_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., number: _Optional[str] = ..., match_kind: _Optional[_Union[MatchKind, str]] = ..., call_type: _Optional[_Union[CallType, str]] = ..., enabled: _Optional[bool] = ..., note: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., status: _Optional[_Union[EntryStatus, str]] = ..., action: _Optional[_Union[Action, str]] = ..., hit_count: _Optional[int] = ..., last_hit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ScreenCallRequest(_message.Message):
    __slots__ = ("tenant_id", "number", "direction", "call_id", "caller_withheld")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    CALLER_WITHHELD_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    number: str
    direction: Direction
    call_id: str
    caller_withheld: bool
    def __init__(self, tenant_id: _Optional[str] = ..., number: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., call_id: _Optional[str] = ..., caller_withheld: _Optional[bool] = ...) -> None: ...

class ScreenCallResponse(_message.Message):
    __slots__ = ("verdict", "normalized_number", "matched_id", "matched_number", "matched_kind", "call_id", "data_version", "reason", "decided_id", "decided_number", "decided_kind", "decided_action", "decided_list")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MATCHED_ID_FIELD_NUMBER: _ClassVar[int]
    MATCHED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MATCHED_KIND_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_ID_FIELD_NUMBER: _ClassVar[int]
    DECIDED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DECIDED_KIND_FIELD_NUMBER: _ClassVar[int]
    DECIDED_ACTION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_LIST_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    normalized_number: str
    matched_id: str
    matched_number: str
    matched_kind: MatchKind
    call_id: str
    data_version: int
    reason: ScreenReason
    decided_id: str
    decided_number: str
    decided_kind: MatchKind
    decided_action: Action
    decided_list: str
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., normalized_number: _Optional[str] = ..., matched_id: _Optional[str] = ..., matched_number: _Optional[str] = ..., matched_kind: _Optional[_Union[MatchKind, str]] = ..., call_id: _Optional[str] = ..., data_version: _Optional[int] = ..., reason: _Optional[_Union[ScreenReason, str]] = ..., decided_id: _Optional[str] = ..., decided_number: _Optional[str] = ..., decided_kind: _Optional[_Union[MatchKind, str]] = ..., decided_action: _Optional[_Union[Action, str]] = ..., decided_list: _Optional[str] = ...) -> None: ...

class ScreenNumbersRequest(_message.Message):
    __slots__ = ("tenant_id", "direction", "numbers")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    direction: Direction
    numbers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenant_id: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., numbers: _Optional[_Iterable[str]] = ...) -> None: ...

class ScreenNumbersResponse(_message.Message):
    __slots__ = ("results", "data_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScreenCallResponse]
    data_version: int
    def __init__(self, results: _Optional[_Iterable[_Union[ScreenCallResponse, _Mapping]]] = ..., data_version: _Optional[int] = ...) -> None: ...

class CreateForbiddenNumberRequest(_message.Message):
    __slots__ = ("forbidden_number",)
    FORBIDDEN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    forbidden_number: ForbiddenNumber
    def __init__(self, forbidden_number: _Optional[_Union[ForbiddenNumber, _Mapping]] = ...) -> None: ...

class GetForbiddenNumberRequest(_message.Message):
    __slots__ = ("tenant_id", "id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    id: str
    def __init__(self, tenant_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class UpdateForbiddenNumberRequest(_message.Message):
    __slots__ = ("forbidden_number", "update_mask")
    FORBIDDEN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    forbidden_number: ForbiddenNumber
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, forbidden_number: _Optional[_Union[ForbiddenNumber, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteForbiddenNumberRequest(_message.Message):
    __slots__ = ("tenant_id", "id", "etag")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    id: str
    etag: str
    def __init__(self, tenant_id: _Optional[str] = ..., id: _Optional[str] = ..., etag: _Optional[str] = ...) -> None: ...

class ForbiddenNumberFilters(_message.Message):
    __slots__ = ("enabled", "call_type", "match_kind", "number_prefix", "status", "query")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CALL_TYPE_FIELD_NUMBER: _ClassVar[int]
    MATCH_KIND_FIELD_NUMBER: _ClassVar[int]
    NUMBER_PREFIX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    call_type: CallType
    match_kind: MatchKind
    number_prefix: str
    status: EntryStatus
    query: str
    def __init__(self, enabled: _Optional[bool] = ..., call_type: _Optional[_Union[CallType, str]] = ..., match_kind: _Optional[_Union[MatchKind, str]] = ..., number_prefix: _Optional[str] = ..., status: _Optional[_Union[EntryStatus, str]] = ..., query: _Optional[str] = ...) -> None: ...

class ListForbiddenNumbersRequest(_message.Message):
    __slots__ = ("tenant_id", "page_size", "page_token", "filters")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page_size: int
    page_token: str
    filters: ForbiddenNumberFilters
    def __init__(self, tenant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filters: _Optional[_Union[ForbiddenNumberFilters, _Mapping]] = ...) -> None: ...

class ListForbiddenNumbersResponse(_message.Message):
    __slots__ = ("forbidden_numbers", "next_page_token", "total_size")
    FORBIDDEN_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    forbidden_numbers: _containers.RepeatedCompositeFieldContainer[ForbiddenNumber]
    next_page_token: str
    total_size: int
    def __init__(self, forbidden_numbers: _Optional[_Iterable[_Union[ForbiddenNumber, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class SetForbiddenNumbersEnabledRequest(_message.Message):
    __slots__ = ("tenant_id", "ids", "enabled")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    enabled: bool
    def __init__(self, tenant_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., enabled: _Optional[bool] = ...) -> None: ...

class SetForbiddenNumbersEnabledResponse(_message.Message):
    __slots__ = ("updated_count",)
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    updated_count: int
    def __init__(self, updated_count: _Optional[int] = ...) -> None: ...

class ImportHeader(_message.Message):
    __slots__ = ("tenant_id", "mode", "source_name", "file_format", "file_size", "time_zone")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    mode: ImportMode
    source_name: str
    file_format: FileFormat
    file_size: int
    time_zone: str
    def __init__(self, tenant_id: _Optional[str] = ..., mode: _Optional[_Union[ImportMode, str]] = ..., source_name: _Optional[str] = ..., file_format: _Optional[_Union[FileFormat, str]] = ..., file_size: _Optional[int] = ..., time_zone: _Optional[str] = ...) -> None: ...

class ImportRow(_message.Message):
    __slots__ = ("line", "number", "call_type", "match_kind", "enabled", "note", "expire_time", "action")
    LINE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CALL_TYPE_FIELD_NUMBER: _ClassVar[int]
    MATCH_KIND_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    line: int
    number: str
    call_type: CallType
    match_kind: MatchKind
    enabled: bool
    note: str
    expire_time: _timestamp_pb2.Timestamp
    action: Action
    def __init__(self, line: _Optional[int] = ..., number: _Optional[str] = ..., call_type: _Optional[_Union[CallType, str]] = ..., match_kind: _Optional[_Union[MatchKind, str]] = ..., enabled: _Optional[bool] = ..., note: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[_Union[Action, str]] = ...) -> None: ...

class ImportRowBatch(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ImportRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[ImportRow, _Mapping]]] = ...) -> None: ...

class ImportForbiddenNumbersRequest(_message.Message):
    __slots__ = ("header", "rows", "file_chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    FILE_CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ImportHeader
    rows: ImportRowBatch
    file_chunk: bytes
    def __init__(self, header: _Optional[_Union[ImportHeader, _Mapping]] = ..., rows: _Optional[_Union[ImportRowBatch, _Mapping]] = ..., file_chunk: _Optional[bytes] = ...) -> None: ...

class ImportRowError(_message.Message):
    __slots__ = ("line", "number", "reason", "cells", "column")
    LINE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    line: int
    number: str
    reason: str
    cells: _containers.RepeatedScalarFieldContainer[str]
    column: str
    def __init__(self, line: _Optional[int] = ..., number: _Optional[str] = ..., reason: _Optional[str] = ..., cells: _Optional[_Iterable[str]] = ..., column: _Optional[str] = ...) -> None: ...

class ImportRowSuperseded(_message.Message):
    __slots__ = ("line", "number", "by_line")
    LINE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    BY_LINE_FIELD_NUMBER: _ClassVar[int]
    line: int
    number: str
    by_line: int
    def __init__(self, line: _Optional[int] = ..., number: _Optional[str] = ..., by_line: _Optional[int] = ...) -> None: ...

class ImportJob(_message.Message):
    __slots__ = ("id", "tenant_id", "state", "source_name", "total_rows", "created_count", "updated_count", "skipped_count", "failed_count", "errors", "create_time", "finish_time", "mode", "failure_reason", "unchanged_count", "superseded_count", "actor", "file_format", "file_size", "bytes_received", "superseded", "columns")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    FILE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    state: ImportJobState
    source_name: str
    total_rows: int
    created_count: int
    updated_count: int
    skipped_count: int
    failed_count: int
    errors: _containers.RepeatedCompositeFieldContainer[ImportRowError]
    create_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    mode: ImportMode
    failure_reason: str
    unchanged_count: int
    superseded_count: int
    actor: str
    file_format: FileFormat
    file_size: int
    bytes_received: int
    superseded: _containers.RepeatedCompositeFieldContainer[ImportRowSuperseded]
    columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., state: _Optional[_Union[ImportJobState, str]] = ..., source_name: _Optional[str] = ..., total_rows: _Optional[int] = ..., created_count: _Optional[int] = ..., updated_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ImportRowError, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mode: _Optional[_Union[ImportMode, str]] = ..., failure_reason: _Optional[str] = ..., unchanged_count: _Optional[int] = ..., superseded_count: _Optional[int] = ..., actor: _Optional[str] = ..., file_format: _Optional[_Union[FileFormat, str]] = ..., file_size: _Optional[int] = ..., bytes_received: _Optional[int] = ..., superseded: _Optional[_Iterable[_Union[ImportRowSuperseded, _Mapping]]] = ..., columns: _Optional[_Iterable[str]] = ...) -> None: ...

class GetImportJobFailedRowsRequest(_message.Message):
    __slots__ = ("tenant_id", "id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    id: str
    def __init__(self, tenant_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("file_name", "content_type", "data")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    content_type: str
    data: bytes
    def __init__(self, file_name: _Optional[str] = ..., content_type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetImportJobRequest(_message.Message):
    __slots__ = ("tenant_id", "id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    id: str
    def __init__(self, tenant_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ListImportJobsRequest(_message.Message):
    __slots__ = ("tenant_id", "page_size", "page_token")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page_size: int
    page_token: str
    def __init__(self, tenant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListImportJobsResponse(_message.Message):
    __slots__ = ("import_jobs", "next_page_token")
    IMPORT_JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    import_jobs: _containers.RepeatedCompositeFieldContainer[ImportJob]
    next_page_token: str
    def __init__(self, import_jobs: _Optional[_Iterable[_Union[ImportJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportForbiddenNumbersRequest(_message.Message):
    __slots__ = ("tenant_id", "filters")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    filters: ForbiddenNumberFilters
    def __init__(self, tenant_id: _Optional[str] = ..., filters: _Optional[_Union[ForbiddenNumberFilters, _Mapping]] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "tenant_id", "actor", "action", "resource_id", "create_time", "request_id", "before", "after", "import_job_id", "changed_fields")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    IMPORT_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    actor: str
    action: str
    resource_id: str
    create_time: _timestamp_pb2.Timestamp
    request_id: str
    before: ForbiddenNumber
    after: ForbiddenNumber
    import_job_id: str
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., resource_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., before: _Optional[_Union[ForbiddenNumber, _Mapping]] = ..., after: _Optional[_Union[ForbiddenNumber, _Mapping]] = ..., import_job_id: _Optional[str] = ..., changed_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("tenant_id", "page_size", "page_token", "resource_id", "actor", "action", "import_job_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    IMPORT_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    page_size: int
    page_token: str
    resource_id: str
    actor: str
    action: str
    import_job_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., resource_id: _Optional[str] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., import_job_id: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("audit_events", "next_page_token")
    AUDIT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    audit_events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, audit_events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetReplicaStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReplicaStatus(_message.Message):
    __slots__ = ("serving", "data_version", "entries", "connected", "last_sync_time", "seconds_behind", "listener_reconnects", "has_primary", "feed_standby", "hot_standby_feedback", "feed_behind")
    SERVING_FIELD_NUMBER: _ClassVar[int]
    DATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNC_TIME_FIELD_NUMBER: _ClassVar[int]
    SECONDS_BEHIND_FIELD_NUMBER: _ClassVar[int]
    LISTENER_RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    HAS_PRIMARY_FIELD_NUMBER: _ClassVar[int]
    FEED_STANDBY_FIELD_NUMBER: _ClassVar[int]
    HOT_STANDBY_FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    FEED_BEHIND_FIELD_NUMBER: _ClassVar[int]
    serving: bool
    data_version: int
    entries: int
    connected: bool
    last_sync_time: _timestamp_pb2.Timestamp
    seconds_behind: float
    listener_reconnects: int
    has_primary: bool
    feed_standby: bool
    hot_standby_feedback: bool
    feed_behind: int
    def __init__(self, serving: _Optional[bool] = ..., data_version: _Optional[int] = ..., entries: _Optional[int] = ..., connected: _Optional[bool] = ..., last_sync_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seconds_behind: _Optional[float] = ..., listener_reconnects: _Optional[int] = ..., has_primary: _Optional[bool] = ..., feed_standby: _Optional[bool] = ..., hot_standby_feedback: _Optional[bool] = ..., feed_behind: _Optional[int] = ...) -> None: ...

class GetCallerIdentityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CallerIdentity(_message.Message):
    __slots__ = ("name", "roles", "tenants")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    tenants: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., tenants: _Optional[_Iterable[str]] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class TenantSummary(_message.Message):
    __slots__ = ("tenant_id", "entry_count", "display_name", "region")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    entry_count: int
    display_name: str
    region: str
    def __init__(self, tenant_id: _Optional[str] = ..., entry_count: _Optional[int] = ..., display_name: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants", "next_page_token")
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[TenantSummary]
    next_page_token: str
    def __init__(self, tenants: _Optional[_Iterable[_Union[TenantSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ScreenCandidate(_message.Message):
    __slots__ = ("entry", "qualifies", "decided", "explanation")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    QUALIFIES_FIELD_NUMBER: _ClassVar[int]
    DECIDED_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    entry: ForbiddenNumber
    qualifies: bool
    decided: bool
    explanation: str
    def __init__(self, entry: _Optional[_Union[ForbiddenNumber, _Mapping]] = ..., qualifies: _Optional[bool] = ..., decided: _Optional[bool] = ..., explanation: _Optional[str] = ...) -> None: ...

class ExplainScreenCallResponse(_message.Message):
    __slots__ = ("result", "candidates")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    result: ScreenCallResponse
    candidates: _containers.RepeatedCompositeFieldContainer[ScreenCandidate]
    def __init__(self, result: _Optional[_Union[ScreenCallResponse, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[ScreenCandidate, _Mapping]]] = ...) -> None: ...

class TenantSettings(_message.Message):
    __slots__ = ("tenant_id", "display_name", "region", "withheld_policy", "subscribed_lists", "etag", "update_time")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_POLICY_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_LISTS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    display_name: str
    region: str
    withheld_policy: WithheldPolicy
    subscribed_lists: _containers.RepeatedScalarFieldContainer[str]
    etag: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, tenant_id: _Optional[str] = ..., display_name: _Optional[str] = ..., region: _Optional[str] = ..., withheld_policy: _Optional[_Union[WithheldPolicy, str]] = ..., subscribed_lists: _Optional[_Iterable[str]] = ..., etag: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTenantSettingsRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class UpdateTenantSettingsRequest(_message.Message):
    __slots__ = ("settings", "update_mask")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    settings: TenantSettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, settings: _Optional[_Union[TenantSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ReviewRegionChangeRequest(_message.Message):
    __slots__ = ("tenant_id", "region")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    region: str
    def __init__(self, tenant_id: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class RegionChange(_message.Message):
    __slots__ = ("entry", "number_in_region")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_IN_REGION_FIELD_NUMBER: _ClassVar[int]
    entry: ForbiddenNumber
    number_in_region: str
    def __init__(self, entry: _Optional[_Union[ForbiddenNumber, _Mapping]] = ..., number_in_region: _Optional[str] = ...) -> None: ...

class ReviewRegionChangeResponse(_message.Message):
    __slots__ = ("changes", "total_size", "conflicts")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[RegionChange]
    total_size: int
    conflicts: int
    def __init__(self, changes: _Optional[_Iterable[_Union[RegionChange, _Mapping]]] = ..., total_size: _Optional[int] = ..., conflicts: _Optional[int] = ...) -> None: ...

class ConvertNumbersToRegionRequest(_message.Message):
    __slots__ = ("tenant_id", "region")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    region: str
    def __init__(self, tenant_id: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class ConvertNumbersToRegionResponse(_message.Message):
    __slots__ = ("converted_count", "conflicts", "settings")
    CONVERTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    converted_count: int
    conflicts: int
    settings: TenantSettings
    def __init__(self, converted_count: _Optional[int] = ..., conflicts: _Optional[int] = ..., settings: _Optional[_Union[TenantSettings, _Mapping]] = ...) -> None: ...
