"""Sessions kept in the console's memory; the browser holds only an opaque id.

The token someone signs in with stays here, never in the cookie, so a
copied cookie jar or a proxy log does not carry a token of the auth file.
The cost: restarting the console signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from screening.console.backend import Identity

COOKIE = "screening_console"
# Every first visit makes a session (it carries the CSRF token of the sign-in
# form), so visitors who never come back must not grow memory without bound.
MAX_SESSIONS = 10_000


@dataclass
class Session:
    id: str
    # Sent back with every change (a form field or the X-CSRF-Token header).
    csrf: str
    last_seen: float
    # The signed-in token; None before sign-in, or when the server checks no tokens.
    token: str | None = None
    identity: Identity | None = None
    # Messages for the next page shown ("3 entries disabled").
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf.encode(), (presented or "").encode())

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class Sessions:
    def __init__(self, idle_seconds: float) -> None:
        self._idle = idle_seconds
        self._by_id: dict[str, Session] = {}

    def new(self) -> Session:
        self._forget_idle()
        if len(self._by_id) >= MAX_SESSIONS:
            # The least recently seen goes first (dicts keep insertion order; get() re-inserts).
            del self._by_id[next(iter(self._by_id))]
        session = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), last_seen=time.monotonic())
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._by_id.get(session_id or "")
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self._idle:
            del self._by_id[session.id]
            return None
        session.last_seen = now
        # Most recently seen last, for MAX_SESSIONS.
        self._by_id[session.id] = self._by_id.pop(session.id)
        return session

    def renew(self, session: Session) -> Session:
        """A new id and CSRF token for a session whose rights change (sign-in), against session fixation."""
        self._by_id.pop(session.id, None)
        fresh = self.new()
        fresh.flashes = session.flashes
        return fresh

    def drop(self, session: Session) -> None:
        self._by_id.pop(session.id, None)

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for stale in [s for s in self._by_id.values() if now - s.last_seen > self._idle]:
            del self._by_id[stale.id]
