"""What the feed a replica reads is (the primary, or a hot standby), learnt on each new feed connection.

A replica's reads on a standby hold a snapshot (a full load, for minutes at
250M entries). Without hot_standby_feedback the primary's VACUUM removes rows
that snapshot still sees, and the standby cancels the read once replaying
the removal would otherwise wait longer than max_standby_streaming_delay:
the load starts over, and may never finish. So the replica checks, and says
what to set.
"""

from __future__ import annotations

import logging

from storage import standby
from storage.db import Conn
from storage.standby import FeedServer

log = logging.getLogger(__name__)

FEEDBACK_ADVICE = (
    "the feed is a standby with hot_standby_feedback = off: VACUUM on the primary can cancel this replica's"
    " reads there (a full load may start over and over); on the standby run"
    " ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf();"
)


class FeedWatch:
    def __init__(self) -> None:
        self.server: FeedServer | None = None

    async def on_connect(self, conn: Conn) -> None:
        """For the feed pool's `init`: runs on every new connection, before its first use."""
        server = await standby.describe(conn)
        if server != self.server:
            if server.standby and not server.hot_standby_feedback:
                log.warning("%s", FEEDBACK_ADVICE)
            elif server.standby:
                log.info("the feed is a hot standby (hot_standby_feedback = on)")
            elif self.server is not None and self.server.standby:
                log.info("the feed is a primary now (promoted, or the URL moved)")
        self.server = server

    @property
    def standby(self) -> bool:
        return self.server is not None and self.server.standby

    @property
    def hot_standby_feedback(self) -> bool:
        """On a standby, whether it is on; a primary needs none (True)."""
        return self.server is None or not self.server.standby or self.server.hot_standby_feedback
