"""How services go onto the grpc.aio server: only Screening's methods are registered one by one.

For every call it accepts, grpc.aio's server loop waits (asyncio.wait) on
one pending request per registered method plus one for all the others, so
each registered method adds to the cost of every call: registered the way
generated code does it, the admin, health and reflection services cost
ScreenCall a measurable share of its throughput (docs/performance.md,
"Registered methods"). They are served through a generic handler instead, looked
up by name when one of their calls arrives; Screening stays registered
exactly as generated code does it, as in the floor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler  # generic only in the type stubs

# (method path, handler) -> the handler to serve, e.g. one that observes the call.
Wrap = Callable[[str, Handler], Handler]


def add_generic_only(
    add_to_server: Callable[[Any, Any], None], servicer: Any, server: grpc.aio.Server, wrap: Wrap | None = None
) -> None:
    """`add_XServicer_to_server(servicer, server)` of generated code, with no method registered one by one."""
    _add(add_to_server, servicer, _Adding(server, wrap or _as_is, registered=False))


def add_registered(
    add_to_server: Callable[[Any, Any], None], servicer: Any, server: grpc.aio.Server, wrap: Wrap | None = None
) -> None:
    """`add_XServicer_to_server(servicer, server)` of generated code, as it does it, with each handler wrapped."""
    _add(add_to_server, servicer, _Adding(server, wrap or _as_is, registered=True))


def _add(add_to_server: Callable[[Any, Any], None], servicer: Any, proxy: _Adding) -> None:
    add_to_server(servicer, proxy)
    if not proxy.added:
        raise RuntimeError(f"{add_to_server.__name__} no longer calls add_registered_method_handlers")


def _as_is(path: str, handler: Handler) -> Handler:
    return handler


class _Adding:
    """Stands in for the server while generated code adds a service."""

    def __init__(self, server: grpc.aio.Server, wrap: Wrap, *, registered: bool) -> None:
        self._server = server
        self._wrap = wrap
        self._registered = registered
        self.added = False

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        # Generated code adds the same handlers both ways: they are added
        # (wrapped) in add_registered_method_handlers instead.
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        wrapped = {name: self._wrap(f"/{service}/{name}", handler) for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        if self._registered:
            self._server.add_registered_method_handlers(service, wrapped)
        self.added = True
