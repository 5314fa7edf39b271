"""The admin page's `latinLookAlikes` (static/js/confusables.js), run in Node: a word written
wholly in Cyrillic, Greek, Armenian or Cherokee letters that are drawn like Latin ones reads
as a Latin word, and the page says so (UTS #39's whole-script confusables).

`mixedScripts` (dom.js) already flagged a word mixing alphabets (`P\u0430ul`); a word with no
Latin letter at all (`\u0440\u0430\u0443` for `pay`) passed unflagged until this.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from admin_api.web.pages import STATIC_DIR
from page_in_node import in_node

MODULE = STATIC_DIR / "js" / "confusables.js"


def look_alikes(texts: list[str]) -> list[list[dict[str, Any]]]:
    verdicts: list[list[dict[str, Any]]] = in_node(
        "confusables.js", "data.map((t) => page.latinLookAlikes(t))", texts
    )
    return verdicts


def test_words_of_another_alphabet_that_read_as_latin_are_found_with_their_reading() -> None:
    texts = {
        "\u0440\u0430\u0443 me": [("\u0440\u0430\u0443", "Cyrillic", "pay")],
        "\u0455\u0441\u043e\u0440\u0435_1": [
            ("\u0455\u0441\u043e\u0440\u0435_1", "Cyrillic", "scope_1")
        ],
        "\u0421\u043e\u0441\u043e Chanel": [("\u0421\u043e\u0441\u043e", "Cyrillic", "Coco")],
        "\u039a\u0391\u03a4\u0395 \u039a\u0391\u03a4\u0395": [
            ("\u039a\u0391\u03a4\u0395", "Greek", "KATE")  # once, however often
        ],
        "\u0570\u0585\u0578": [("\u0570\u0585\u0578", "Armenian", "hon")],
        "\u13aa\u13c0\u13ac": [("\u13aa\u13c0\u13ac", "Cherokee", "AGE")],
        # not one: a letter without a Latin look-alike, a Latin letter among them (mixedScripts'
        # case), a single letter (the Russian conjunction), two alphabets, no look-alike alphabet
        "\u0418\u0432\u0430\u043d Petrov": [],
        "P\u0430ul": [],
        "\u0410\u043d\u043d\u0430 \u0441 \u041f\u0435\u0442\u0440\u043e\u043c": [],
        "\u0440\u03b1": [],
        "\u0391\u03bb\u03ad\u03be\u03b1\u03bd\u03b4\u03c1\u03bf\u03c2": [],
        "Tokyo\u6771\u4eac": [],
        "": [],
    }
    verdicts = look_alikes(list(texts))
    for (text, expected), verdict in zip(texts.items(), verdicts, strict=True):
        got = [(w["word"], w["script"], w["reads"]) for w in verdict]
        assert got == expected, text


def test_the_table_holds_only_letters_of_those_alphabets_read_as_one_ascii_letter() -> None:
    """The table is confusables.txt's lines for those scripts (its header names the version):
    each source a letter of one of the four alphabets, each prototype one ASCII letter, and
    the look-alikes every IDN spoof checker names among them."""
    source = MODULE.read_text(encoding="utf-8")
    pairs = re.findall(r'"\\u([0-9a-f]{4})": "([A-Za-z])"', source)
    table = {chr(int(code, 16)): latin for code, latin in pairs}
    assert len(table) == len(pairs) > 100
    for letter in table:
        name = unicodedata.name(letter)
        assert "LETTER" in name and name.split()[0] in {
            "CYRILLIC",
            "GREEK",
            "ARMENIAN",
            "CHEROKEE",
        }, name
    # the Cyrillic, Greek and Armenian look-alikes IDN spoof checkers know best
    for letter, latin in zip(
        "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u04bb\u0501\u051b\u051d"
        "\u03bf\u03b1\u03c1\u03bd\u03b9\u0585\u0578\u057d\u0570",
        "aeopcyxijshdqwoapvionuh",
        strict=True,
    ):
        assert table.get(letter) == latin, unicodedata.name(letter)
