from screening.v1 import screening_pb2 as pb
from tests.support import Clients, wait_until


async def test_created_number_is_blocked(clients: Clients) -> None:
    created = await clients.admin.CreateForbiddenNumber(
        pb.CreateForbiddenNumberRequest(
            forbidden_number=pb.ForbiddenNumber(tenant_id="acme", number="+1 415 555 0100", call_type=pb.CALL_TYPE_BOTH)
        )
    )
    assert created.number == "+14155550100"

    async def blocked() -> bool:
        r = await clients.screening.ScreenCall(
            pb.ScreenCallRequest(tenant_id="acme", number="+14155550100", direction=pb.DIRECTION_INBOUND)
        )
        return r.verdict == pb.VERDICT_BLOCK and r.matched_id == created.id

    await wait_until(blocked, within=1)
