"""English and Simplified Chinese: Babel catalogs read from their .po files at start-up.

The .po files under locale/ are the only form kept in git: they are compiled
in memory when the console starts, so no compiled .mo can drift from them.
`make console-messages` extracts new strings into them.
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT = "en"


@dataclass(frozen=True)
class Language:
    code: str
    # For <html lang> and Accept-Language.
    tag: str
    # In its own language, for the switch.
    name: str


LANGUAGES = {
    "en": Language("en", "en", "English"),
    "zh_Hans": Language("zh_Hans", "zh-Hans", "简体中文"),
}


def load() -> dict[str, gettext.NullTranslations]:
    found: dict[str, gettext.NullTranslations] = {DEFAULT: gettext.NullTranslations()}
    for code in LANGUAGES:
        if code == DEFAULT:
            continue
        with (LOCALE_DIR / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=code)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        found[code] = Translations(fp=compiled)
    return found


def negotiate(accept_language: str) -> str:
    """The language for an Accept-Language header: the first one we have, by the browser's weights."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag:
            ranked.append((-weight, position, tag.strip().lower()))
    for negative_weight, _, tag in sorted(ranked):
        if negative_weight >= 0:
            break
        primary = tag.split("-")[0]
        # Any Chinese reader is better served by Simplified Chinese than English.
        if primary == "zh":
            return "zh_Hans"
        if primary == "en":
            return "en"
    return DEFAULT
