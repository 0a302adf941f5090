"""Domain errors. Each names what went wrong; screening.api.status maps them to gRPC."""

from __future__ import annotations


class DomainError(Exception):
    """Base of the errors the domain raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    def __init__(self, field: str, value: object, reason: str) -> None:
        value_text = repr(value[:77] + "...") if isinstance(value, str) and len(value) > 80 else repr(value)
        super().__init__(f"{field} {value_text}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class NotFound(DomainError):
    def __init__(self, kind: str, resource_id: str, tenant_id: str) -> None:
        super().__init__(f"{kind} {resource_id!r} not found in tenant {tenant_id!r}")
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
