"""The KEMI request route: screen each initial INVITE, then decline or relay it.

Kamailio calls `Router.ksr_request_route` for every request; `KSR` is the
module Kamailio's app_python3 gives the script (it exists only in there).
"""

from __future__ import annotations

import KSR

from sipscreen.client import Decision, Outcome, ScreeningClient
from sipscreen.settings import Settings, Source

# Declared in kamailio.cfg (modparam "statistics" "variable"); read them with
# `kamcmd stats.get_statistics script:` (they land in the group "script").
STATS = {outcome: f"screening_{outcome.value}" for outcome in Outcome}
STAT_UNKNOWN_SOURCE = "screening_unknown_source"


def _quoted(text: str) -> str:
    # A quoted-string may not hold a bare quote or backslash (RFC 3261 25.1).
    return text.replace("\\", "\\\\").replace('"', '\\"')


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = ScreeningClient(settings)
        self.sources = settings.sources_by_address()

    def child_init(self, rank: int) -> int:
        # SIP workers have rank > 0: connect now so that the first call does not
        # pay for it. The main process (rank 0 and below) never makes a channel.
        if rank > 0 and self.settings.enabled and not self.client.warm_up(within=self.settings.deadline):
            KSR.warn(f"screening: worker {rank}: {self.settings.target} not reachable yet; calls will retry it\n")
        return 0

    def ksr_request_route(self, msg: object) -> int:
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return 1
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                self._relay()
            return 1
        if KSR.siputils.has_totag() > 0:
            self._within_dialog()
            return 1
        # Retransmission of a request still being handled or already answered.
        if KSR.tmx.t_precheck_trans() > 0:
            KSR.tm.t_check_trans()
            return 1
        if KSR.tm.t_check_trans() == 0:
            return 1
        if KSR.is_ACK():
            return 1
        if KSR.is_OPTIONS() and KSR.corex.has_ruri_user() < 0:
            KSR.sl.sl_send_reply(200, "Keepalive")
            return 1
        host = KSR.pv.get("$si")
        source = self.sources.get(f"{host}:{KSR.pv.get('$sp')}") or self.sources.get(host)
        if source is None:
            self._count(STAT_UNKNOWN_SOURCE)
            KSR.sl.sl_send_reply(403, "Unknown Source")
            return 1
        KSR.hdr.remove("Route")
        if KSR.is_INVITE():
            # The transaction absorbs retransmissions while the service is asked.
            KSR.tm.t_newtran()
            if self.settings.enabled and not self._screen(source):
                return 1
        KSR.rr.record_route()
        KSR.setdsturi(self.settings.next_hop)
        self._relay()
        return 1

    def _within_dialog(self) -> None:
        if KSR.rr.loose_route() > 0:
            self._relay()
        elif KSR.is_ACK():
            # The ACK of a negative reply ends its transaction here.
            if KSR.tm.t_check_trans() > 0:
                self._relay()
        else:
            KSR.sl.sl_send_reply(404, "Not Here")

    def _relay(self) -> None:
        if KSR.tm.t_relay() < 0:
            KSR.sl.sl_reply_error()

    def _screen(self, source: Source) -> bool:
        """True when the call may continue; otherwise it has been answered."""
        tenant = source.tenant
        if source.tenant_header:
            tenant = KSR.pv.gete(f"$hdr({source.tenant_header})") or tenant
        # Inbound: the caller (From user); outbound: the callee (Request-URI user).
        number = KSR.pv.gete("$fU" if source.direction == "inbound" else "$rU")
        call_id = KSR.pv.gete("$ci")
        try:
            decision = self.client.screen(tenant, number, source.direction, call_id)
        except Exception as exc:  # noqa: BLE001  # every INVITE must still be answered, by the policy
            decision = self.client.unanswered(f"{type(exc).__name__}: {exc}")
        self._count(STATS[decision.outcome])
        outcome = decision.outcome
        if outcome is Outcome.ALLOW:
            return True
        if outcome is Outcome.BLOCK:
            self._decline(decision, number, tenant, call_id)
            return False
        if outcome is Outcome.UNSCREENABLE:
            KSR.info(f"screening: {source.direction} call {call_id}: {number!r} is not a phone number, allowed\n")
            return True
        KSR.warn(
            f"screening: {source.direction} call {call_id} from source {source.name}: no answer"
            f" ({decision.error}); failing {'open' if outcome is Outcome.FAIL_OPEN else 'closed'}\n"
        )
        if outcome is Outcome.FAIL_OPEN:
            return True
        KSR.hdr.append_to_reply(f'Reason: SIP;cause=503;text="{_quoted("screening unavailable")}"\r\n')
        KSR.sl.send_reply(503, "Service Unavailable")
        return False

    def _decline(self, decision: Decision, number: str, tenant: str, call_id: str) -> None:
        entry = f"forbidden number {decision.matched_number} ({decision.matched_kind}, entry {decision.matched_id})"
        KSR.info(f"screening: call {call_id} tenant {tenant} number {number!r} blocked by {entry}\n")
        KSR.hdr.append_to_reply(f'Reason: SIP;cause=603;text="{_quoted(entry)}"\r\n')
        KSR.sl.send_reply(603, "Decline")

    def _count(self, name: str) -> None:
        KSR.statistics.update_stat(name, 1)
