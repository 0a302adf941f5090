"""Domain errors. Each names what went wrong; screening.api.status maps them to gRPC."""

from __future__ import annotations

# Input quoted in a message is cut to this many characters, with its size given: a 100 KB id
# must not make a status message the client cannot receive.
QUOTED = 80


def quoted(value: object, limit: int = QUOTED) -> str:
    """A value as an error message quotes it: repr, cut short with its size when long."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} {'characters' if isinstance(value, str) else 'bytes'})"
    text = repr(value)
    return text if len(text) <= limit * 2 else text[: limit * 2] + f"... ({len(text)} characters)"


class DomainError(Exception):
    """Base of the errors the domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"{field} {quoted(value)}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class ImportFailed(InvalidArgument):
    """An import refused for its input; the FAILED job it left is named, for the client to show."""

    def __init__(self, field: str, value: object, reason: str, job_id: str) -> None:
        super().__init__(field, value, reason)
        self.job_id = job_id


class NotFound(DomainError):
    def __init__(self, kind: str, resource_id: str, tenant_id: str) -> None:
        super().__init__(f"{kind} {quoted(resource_id)} not found in tenant {quoted(tenant_id)}")
        self.kind = kind
        self.resource_id = resource_id


class AlreadyExists(DomainError):
    pass


class Aborted(DomainError):
    """Optimistic concurrency failed: the caller's etag is stale."""


class FailedPrecondition(DomainError):
    pass


class ResourceExhausted(DomainError):
    pass


class Unavailable(DomainError):
    """A dependency (the database, the first load) is not there yet or any more."""


class PermissionDenied(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class ConfigError(ValueError):
    """A setting (a flag, the auth file, a TLS file) that cannot work; names the setting and its value."""
