"""The KEMI request route: screen each initial INVITE, then decline or relay it.

Kamailio calls `Router.ksr_request_route` for every request; `KSR` is the
module Kamailio's app_python3 gives the script (it exists only in there).
"""

from __future__ import annotations

import KSR

from sipscreen.client import Decision, Outcome, ScreeningClient
from sipscreen.numbers import mask, name_addr_uris, uri_user
from sipscreen.settings import Settings, Source

# Declared in kamailio.cfg (modparam "statistics" "variable"); read them with
# `kamcmd stats.get_statistics script:` (they land in the group "script").
STATS = {outcome: f"screening_{outcome.value}" for outcome in Outcome}
STAT_UNKNOWN_SOURCE = "screening_unknown_source"
# The policy answered without asking: the breaker was open, or too many workers waited.
STAT_SHORTCUT = {"breaker": "screening_breaker", "busy": "screening_busy"}
# Cancelled while being screened: neither relayed nor answered again (tm answered 487).
STAT_CANCELLED = "screening_cancelled"
PAI = "$(hdr(P-Asserted-Identity)[*])"


def _shown(number: str) -> str:
    return number


def _quoted(text: str) -> str:
    # A quoted-string may not hold a bare quote or backslash (RFC 3261 25.1).
    return text.replace("\\", "\\\\").replace('"', '\\"')


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = ScreeningClient(settings)
        self.sources = settings.sources_by_address()
        self.shown = mask if settings.mask_numbers else _shown

    def child_init(self, rank: int) -> int:
        # SIP workers have rank > 0: connect now so that the first call does not
        # pay for it. The main process (rank 0 and below) never connects.
        if rank <= 0 or not self.settings.enabled:
            return 0
        children = KSR.pv.get("$defn(CHILDREN)")
        self.client.worker(rank, children if isinstance(children, int) else 0)
        why = self.client.warm_up(within=self.settings.deadline)
        if why:
            KSR.warn(
                f"screening: worker {rank}: {self.settings.target} not reachable yet ({why}); calls will retry it\n"
            )
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
        # A CANCEL may land between the check after screening and the relay: tm
        # then refuses to relay and has answered 487 itself.
        if KSR.tm.t_relay() < 0 and not (KSR.is_INVITE() and KSR.tm.t_is_canceled() > 0):
            KSR.sl.sl_reply_error()

    def _number(self, source: Source) -> tuple[str, str | None]:
        """The screened identity's user part as sent, and as E.164 (None: no phone number)."""
        plan = source.numbers
        if source.direction == "outbound":
            user = uri_user(KSR.pv.gete("$ru"))
            return user, plan.e164(user)
        if source.identity == "pai":
            # The trunk is trusted to assert the caller, withheld (Privacy: id) or not.
            asserted = KSR.pv.gete(PAI)
            if asserted:
                for uri in name_addr_uris(asserted):
                    user = uri_user(uri)
                    number = plan.e164(user)
                    if number is not None:
                        return user, number
        user = uri_user(KSR.pv.gete("$fu"))
        return user, plan.e164(user)

    def _screen(self, source: Source) -> bool:
        """True when the call may continue; otherwise it has been answered."""
        tenant = source.tenant
        if source.tenant_header:
            tenant = KSR.pv.gete(f"$hdr({source.tenant_header})") or tenant
        # Inbound: the caller (From, or P-Asserted-Identity); outbound: the callee (Request-URI).
        user, number = self._number(source)
        call_id = KSR.pv.gete("$ci")
        if number is None:
            self._count(STATS[Outcome.UNSCREENABLE])
            KSR.info(
                f"screening: {source.direction} call {call_id}: {self.shown(user)!r} is not a phone number, allowed\n"
            )
            return True
        try:
            decision = self.client.screen(tenant, number, source.direction, call_id)
        except Exception as exc:  # noqa: BLE001  # every INVITE must still be answered, by the policy
            decision = self.client.unanswered(f"{type(exc).__name__}: {exc}")
        # Screening took a while: a CANCEL may have ended the call meanwhile, and
        # tm answered it 487. Relaying or answering now would be a stray.
        if KSR.tm.t_is_canceled() > 0:
            self._count(STAT_CANCELLED)
            return False
        outcome = decision.outcome
        self._count(STATS[outcome])
        if decision.closed:
            KSR.info(f"screening: {self.settings.target} answers again; circuit closed\n")
        if outcome is Outcome.ALLOW:
            return True
        if outcome is Outcome.BLOCK:
            self._decline(decision, number, tenant, call_id)
            return False
        if outcome is Outcome.UNSCREENABLE:
            KSR.info(
                f"screening: {source.direction} call {call_id}: {self.shown(number)!r} is not a phone number, allowed\n"
            )
            return True
        policy = "open" if outcome is Outcome.FAIL_OPEN else "closed"
        if decision.shortcut:
            # Counted, not logged: an open breaker would log every call.
            self._count(STAT_SHORTCUT[decision.shortcut])
        else:
            KSR.warn(
                f"screening: {source.direction} call {call_id} from source {source.name}: no answer"
                f" ({decision.error}); failing {policy}\n"
            )
        if decision.opened:
            KSR.warn(
                f"screening: {self.settings.breaker_failures} calls in a row without an answer; circuit open:"
                f" failing {policy} at once for {self.settings.breaker_cooldown:g} s, then probing\n"
            )
        if outcome is Outcome.FAIL_OPEN:
            return True
        KSR.hdr.append_to_reply(f'Reason: SIP;cause=503;text="{_quoted("screening unavailable")}"\r\n')
        KSR.sl.send_reply(503, "Service Unavailable")
        return False

    def _decline(self, decision: Decision, number: str, tenant: str, call_id: str) -> None:
        entry = f"forbidden number {decision.matched_number} ({decision.matched_kind}, entry {decision.matched_id})"
        shown = self.shown
        KSR.info(
            f"screening: call {call_id} tenant {tenant} number {shown(number)} blocked by forbidden number"
            f" {shown(decision.matched_number)} ({decision.matched_kind}, entry {decision.matched_id})\n"
        )
        KSR.hdr.append_to_reply(f'Reason: SIP;cause=603;text="{_quoted(entry)}"\r\n')
        KSR.sl.send_reply(603, "Decline")

    def _count(self, name: str) -> None:
        KSR.statistics.update_stat(name, 1)
