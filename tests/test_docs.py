"""The docs say what the code does: the flag table is the flags' own declaration, the README stays short."""

from pathlib import Path

from screening.app.config import flag_table

ROOT = Path(__file__).resolve().parent.parent


def test_the_flag_table_in_the_operations_guide_is_generated_from_the_declarations() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text.split("<!-- flags:begin -->\n", 1)[1].split("<!-- flags:end -->", 1)[0]
    assert table == flag_table(), "docs/operations.md is stale; paste screening.app.config.flag_table() in"
