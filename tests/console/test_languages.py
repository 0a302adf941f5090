"""English and Simplified Chinese: a complete catalog, chosen from the browser's languages, switchable."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from playwright.async_api import Page, expect

from screening.console import i18n
from screening.v1 import screening_pb2 as pb
from tests.support import Clients, create

CONSOLE = Path(i18n.__file__).parent


def test_every_string_of_the_console_has_a_chinese_translation() -> None:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}
    # (context, message): one English word may need two Chinese ones ("Updated": a time, a count of rows).
    wanted = {
        (context, message if isinstance(message, str) else message[0])
        for _, _, message, _, context in extract_from_dir(str(CONSOLE), method_map, options, keywords)
    }
    assert len(wanted) > 150
    with (CONSOLE / "locale" / "zh_Hans" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="zh_Hans")
    translated = {
        (m.context, m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and (m.string if isinstance(m.string, str) else all(m.string)) and not m.fuzzy
    }
    assert sorted(wanted - translated) == []


def test_the_language_follows_the_browsers_weights() -> None:
    assert i18n.negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh_Hans"
    assert i18n.negotiate("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert i18n.negotiate("fr-FR,zh-TW;q=0.7,en;q=0.5") == "zh_Hans"
    assert i18n.negotiate("de;q=0.9,en;q=0.1") == "en"
    assert i18n.negotiate("") == "en"
    assert i18n.negotiate("zh;q=0") == "en"


async def test_chinese_pages(console, clients: Clients, new_page, shot) -> None:
    await create(clients, "+14155550100", note="骚扰电话")
    page: Page = await new_page(locale="zh-CN", timezone_id="Asia/Shanghai")
    await page.goto(console.at("/t/acme/numbers"))
    await expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    await expect(page.get_by_role("heading", name="禁止号码")).to_be_visible()
    await expect(page.get_by_role("button", name="新增")).to_be_visible()
    await expect(page.locator("tbody tr")).to_contain_text("呼入和呼出")
    await expect(page.get_by_role("switch", name="启用：+14155550100")).to_be_checked()
    await page.reload()  # the browser's time zone, learned on the first page, now shapes times
    await expect(page.locator("footer")).to_have_text("时间按 Asia/Shanghai 显示。")
    await shot(page, "zh-numbers")

    await page.get_by_role("button", name="新增").click()
    dialog = page.get_by_role("dialog", name="新增禁止号码")
    await dialog.get_by_label("号码", exact=True).fill("+86 138 0013 8000")
    await expect(dialog.get_by_text("将保存为")).to_be_visible()
    await dialog.get_by_role("button", name="保存").click()
    await expect(page.locator("#entry-call_type-error")).to_have_text("请选择此号码禁止哪些呼叫。")
    await shot(page, "zh-add-dialog")
    await page.get_by_role("dialog").get_by_label("呼叫类型").select_option("inbound")
    await page.get_by_role("dialog").get_by_label("过期时间").fill("2030-01-01T08:00")
    await page.get_by_role("dialog").get_by_role("button", name="保存").click()
    await expect(page.locator("#messages")).to_contain_text("已新增 +8613800138000。")
    # 08:00 in Shanghai is midnight UTC.
    row_id = await page.locator("tr", has_text="+8613800138000").get_attribute("id")
    assert row_id is not None
    stored = await clients.admin.GetForbiddenNumber(
        pb.GetForbiddenNumberRequest(tenant_id="acme", id=row_id.removeprefix("entry-"))
    )
    assert stored.expire_time.ToJsonString() == "2030-01-01T00:00:00Z"

    for link, heading, name in (
        ("任务中心", "任务中心", "zh-tasks"),
        ("号码测试", "号码测试", "zh-test"),
        ("审计日志", "审计日志", "zh-audit"),
        ("副本状态", "副本状态", "zh-status"),
    ):
        await page.get_by_role("link", name=link).click()
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        await shot(page, name)

    # Switched by hand, remembered over the browser's preference.
    await page.get_by_role("button", name="English").click()
    await expect(page.get_by_role("heading", name="Replica status")).to_be_visible()
    await page.get_by_role("link", name="Forbidden numbers").click()
    await expect(page.get_by_role("heading", name="Forbidden numbers")).to_be_visible()
    await page.get_by_role("button", name="简体中文").click()
    await expect(page.get_by_role("heading", name="禁止号码")).to_be_visible()
