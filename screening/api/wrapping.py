"""One place that wraps a handler, by the RPC's shape, in every cross-cutting concern.

A concern (auth, the access log, whatever comes next) says what it does at
the start of a call, for each request message, and at the end; `wrap`
builds, once per RPC where services are added to the server, one handler
of the RPC's own shape that runs them around the servicer's method and
turns whatever the method raises into a status (screening.api.status), the
way its kind asks (screening.api.methods).

Not interceptors: grpc.aio runs a server interceptor on every call, and one
that only passes calls on costs ScreenCall 2.6% of its throughput (see
docs/performance.md). A wrapped handler costs only what its concerns do.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

import grpc

from screening.api.status import to_status
from screening.domain.errors import Unavailable

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:
    Handler = grpc.RpcMethodHandler  # generic only in the type stubs
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class Undecodable:
    """A request whose bytes are not a message of its type: the method answers INVALID_ARGUMENT.

    grpc would answer UNKNOWN for a deserializer that raises; this one never
    does, and the wrapper refuses what it returns before the method runs.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _decoding(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if parse is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, and RuntimeWarning-like kin
            return Undecodable(f"{type(exc).__name__}: {str(exc)[:200]}")

    return decode


def _undecodable(request: Undecodable) -> tuple[grpc.StatusCode, str]:
    return grpc.StatusCode.INVALID_ARGUMENT, f"request: the message could not be decoded ({request.reason})"


class Refusal(NamedTuple):
    """A concern's answer that ends the call with this status."""

    code: grpc.StatusCode
    message: str


@dataclass(frozen=True, slots=True)
class Concern:
    """What one cross-cutting concern does around each call of one RPC; plain functions, no awaits."""

    # At the start: a state for this call (handed to the others), or a Refusal.
    begin: Callable[[Context], Any]
    # For each request message (a client stream's first one before the method starts): None, or a Refusal.
    request: Callable[[Any, Any], Refusal | None] | None = None
    # At the end, with what the call raised (None when it returned).
    end: Callable[[Any, Context, BaseException | None], None] | None = None


@dataclass(frozen=True, slots=True)
class Translation:
    """How a method's errors become statuses."""

    # Calls that wait on the database give up a little before the caller's deadline (or after
    # DEFAULT_BUDGET without one), so the caller hears UNAVAILABLE and why, not a bare DEADLINE_EXCEEDED.
    budget: bool


DEFAULT_BUDGET = 30.0
_MARGIN = 0.1


async def _abort(context: Context, exc: BaseException) -> None:
    await context.abort_with_status(to_status(exc))


async def _call_unary(
    behaviour: Callable[..., Any], is_async: bool, budget: bool, request: Any, context: Context
) -> Any:
    try:
        if budget:
            remaining = context.time_remaining()
            seconds = DEFAULT_BUDGET if remaining is None else max(remaining * (1 - _MARGIN), 0.0)
            try:
                async with asyncio.timeout(seconds):
                    return await behaviour(request, context)
            except TimeoutError:
                raise Unavailable(f"the database did not answer within {seconds:.1f}s; retry later") from None
        result = behaviour(request, context)
        return await result if is_async else result
    except grpc.aio.AbortError:
        raise
    except Exception as exc:
        await _abort(context, exc)
        raise AssertionError("unreachable") from exc  # abort_with_status always raises


def _begin(concerns: Sequence[Concern], states: list[Any], context: Context) -> Refusal | None:
    for concern in concerns:
        state = concern.begin(context)
        states.append(state)
        if type(state) is Refusal:
            return state
    return None


def _check(concerns: Sequence[Concern], states: list[Any], request: Any) -> Refusal | None:
    for concern, state in zip(concerns, states, strict=True):
        if concern.request is not None:
            refused = concern.request(state, request)
            if refused is not None:
                return refused
    return None


def _end(concerns: Sequence[Concern], states: list[Any], context: Context, error: BaseException | None) -> None:
    for concern, state in reversed(list(zip(concerns, states, strict=False))):
        if concern.end is not None:
            concern.end(state, context, error)


def wrap(
    handler: Handler, concerns: Sequence[Concern], translation: Translation | None, *, encoded: bool = False
) -> Handler:
    """`handler` with the concerns around it (the first outermost) and, when given, its errors translated.

    `encoded`: the method returns its responses as bytes (screening.api.wire), which grpc sends as they are.
    """
    concerns = tuple(concerns)
    if not concerns and translation is None and not encoded:
        return handler
    kwargs = {
        "request_deserializer": _decoding(handler.request_deserializer),
        "response_serializer": None if encoded else handler.response_serializer,
    }
    # grpc's stubs type behaviours as sync; under grpc.aio they may be coroutines or async generators.
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_unary_unary(handler.unary_unary, concerns, translation), **kwargs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _stream_unary(handler.stream_unary, concerns, translation), **kwargs
        )
    if handler.unary_stream is not None:
        behaviour: Any = handler.unary_stream
        return grpc.unary_stream_rpc_method_handler(_streaming(behaviour, concerns, translation, False), **kwargs)
    behaviour = handler.stream_stream
    return grpc.stream_stream_rpc_method_handler(_streaming(behaviour, concerns, translation, True), **kwargs)


def _unary_unary(behaviour: Any, concerns: tuple[Concern, ...], translation: Translation | None) -> Any:
    is_async = inspect.iscoroutinefunction(behaviour)
    budget = translation is not None and translation.budget
    translate = translation is not None
    if not is_async and not budget and translate and all(c.end is None for c in concerns) and len(concerns) <= 1:
        # The hot path (ScreenCall): a plain method, at most one concern without an end (auth).
        # One coroutine per call and no loops: every instruction here is paid on every call.
        if not concerns:

            async def bare(request: Any, context: Context) -> Any:
                if type(request) is Undecodable:
                    await context.abort(*_undecodable(request))
                try:
                    return behaviour(request, context)
                except Exception as exc:
                    await _abort(context, exc)
                    raise AssertionError("unreachable") from exc

            return bare
        begin, check = concerns[0].begin, concerns[0].request

        async def guarded(request: Any, context: Context) -> Any:
            if type(request) is Undecodable:
                await context.abort(*_undecodable(request))
            state = begin(context)
            if type(state) is Refusal:
                await context.abort(state.code, state.message)
            if check is not None:
                refused = check(state, request)
                if refused is not None:
                    await context.abort(refused.code, refused.message)
            try:
                return behaviour(request, context)
            except Exception as exc:
                await _abort(context, exc)
                raise AssertionError("unreachable") from exc

        return guarded

    async def unary(request: Any, context: Context) -> Any:
        states: list[Any] = []
        error: BaseException | None = None
        try:
            if type(request) is Undecodable:
                await context.abort(*_undecodable(request))
            refused = _begin(concerns, states, context) or _check(concerns, states, request)
            if refused is not None:
                await context.abort(refused.code, refused.message)
            if not translate:
                result = behaviour(request, context)
                return await result if is_async else result
            return await _call_unary(behaviour, is_async, budget, request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(concerns, states, context, error)

    return unary


async def _nothing() -> AsyncIterator[Any]:
    return
    yield  # makes this an (empty) async generator


async def _checked_stream(
    requests: AsyncIterator[Any], concerns: tuple[Concern, ...], states: list[Any], context: Context
) -> AsyncIterator[Any]:
    """The request stream with its first message checked already, before the method starts."""
    stream = aiter(requests)
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        return _nothing()
    if type(first) is Undecodable:
        await context.abort(*_undecodable(first))
    refused = _check(concerns, states, first)
    if refused is not None:
        await context.abort(refused.code, refused.message)
    checks = any(c.request is not None for c in concerns)

    async def rest() -> AsyncIterator[Any]:
        yield first
        async for request in stream:
            if type(request) is Undecodable:
                await context.abort(*_undecodable(request))
            if checks:
                refused = _check(concerns, states, request)
                if refused is not None:
                    await context.abort(refused.code, refused.message)
            yield request

    return rest()


def _stream_unary(behaviour: Any, concerns: tuple[Concern, ...], translation: Translation | None) -> Any:
    async def consume(requests: AsyncIterator[Any], context: Context) -> Any:
        states: list[Any] = []
        error: BaseException | None = None
        try:
            refused = _begin(concerns, states, context)
            if refused is not None:
                await context.abort(refused.code, refused.message)
            stream = await _checked_stream(requests, concerns, states, context)
            if translation is None:
                return await behaviour(stream, context)
            return await _call_unary(behaviour, True, translation.budget, stream, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(concerns, states, context, error)

    return consume


def _streaming(
    behaviour: Any, concerns: tuple[Concern, ...], translation: Translation | None, client_streaming: bool
) -> Any:
    """A method that answers with a stream (an async generator, or a coroutine writing to the context)."""

    async def start(request: Any, context: Context, states: list[Any]) -> Any:
        if type(request) is Undecodable:
            await context.abort(*_undecodable(request))
        refused = _begin(concerns, states, context)
        if refused is None and not client_streaming:
            refused = _check(concerns, states, request)
        if refused is not None:
            await context.abort(refused.code, refused.message)
        if client_streaming:
            return await _checked_stream(request, concerns, states, context)
        return request

    if not inspect.isasyncgenfunction(behaviour):
        # Written against context.write(): a coroutine, and so is its wrapper.
        async def writer(request: Any, context: Context) -> None:
            states: list[Any] = []
            error: BaseException | None = None
            try:
                arg = await start(request, context, states)
                try:
                    await behaviour(arg, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    if translation is None:
                        raise
                    await _abort(context, exc)
            except BaseException as exc:
                error = exc
                raise
            finally:
                _end(concerns, states, context, error)

        return writer

    async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
        states: list[Any] = []
        error: BaseException | None = None
        try:
            arg = await start(request, context, states)
            try:
                async for response in behaviour(arg, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                if translation is None:
                    raise
                await _abort(context, exc)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end(concerns, states, context, error)

    return generator
