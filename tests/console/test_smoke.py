from __future__ import annotations

from playwright.async_api import Page

from screening.v1 import screening_pb2 as pb
from tests.support import Clients, create


async def test_list_page(console, clients: Clients, page: Page, shot) -> None:
    await create(clients, "+14155550100", note="robocalls")
    await create(clients, "+1900", match_kind=pb.MATCH_KIND_PREFIX, call_type=pb.CALL_TYPE_OUTBOUND)
    await page.goto(console.at("/t/acme/numbers"))
    await shot(page, "smoke-numbers")
    assert "+14155550100" in await page.content()
