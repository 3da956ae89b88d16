# ruff: noqa: RUF001 - test texts in other scripts
"""Decoding follows the WHATWG Encoding Standard: only labels browsers know, mapped as the
standard maps them (issue 8)."""

from __future__ import annotations

import pytest

from preserve.extract import extract
from preserve.extract.decode import declared_charset, decode_html, normalise_charset
from preserve.extract.encodings import ENCODINGS, decode_as, lookup

PROSE = "Le comité a publié ses conclusions mardi, et le rapport décrit les détentions. " * 4


def _page(meta: str, text: str = PROSE) -> str:
    return f"<html><head>{meta}</head><body><article><p>{text}</p></article></body></html>"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("iso-8859-1", "windows-1252"),
        ("latin1", "windows-1252"),
        ("ascii", "windows-1252"),
        ("US-ASCII", "windows-1252"),
        (" ISO_8859-1:1987\t", "windows-1252"),
        ("iso-8859-9", "windows-1254"),
        ("tis-620", "windows-874"),
        ("gb2312", "GBK"),
        ("x-gbk", "GBK"),
        ("gb18030", "gb18030"),
        ("big5-hkscs", "Big5"),
        ("sjis", "Shift_JIS"),
        ("windows-31j", "Shift_JIS"),
        ("ks_c_5601-1987", "EUC-KR"),
        ("iso-2022-kr", "replacement"),
        ("hz-gb-2312", "replacement"),
        ("iso-2022-cn", "replacement"),
        ("x-user-defined", "x-user-defined"),
        ("unicode", "UTF-16LE"),
        ("utf8", "UTF-8"),
        ("koi8-ru", "KOI8-U"),
        ("logical", "ISO-8859-8-I"),
    ],
)
def test_labels_map_as_the_standard_says(label: str, expected: str) -> None:
    assert lookup(label) == expected


@pytest.mark.parametrize(
    "label", ["utf-7", "UTF-7", "ebcdic-cp-us", "cp037", "utf-32", "bogus", ""]
)
def test_labels_browsers_do_not_know_are_absent(label: str) -> None:
    assert lookup(label) is None
    assert normalise_charset(label) is None


def test_every_label_is_lowercase_and_unique() -> None:
    labels = [label for group in ENCODINGS.values() for label in group]
    assert len(labels) == len(set(labels))
    assert all(label == label.strip().lower() for label in labels)


def test_utf7_declaration_is_not_decoded_as_utf7() -> None:
    # "+ADw-script+AD4-" is "<script>" in UTF-7: a browser shows the plus signs literally.
    body = "Texte +ADw-b+AD4-important+ADw-/b+AD4- et " + PROSE
    raw = _page('<meta charset="utf-7">', body).encode("ascii", "xmlcharrefreplace")
    text, used = decode_html(raw)
    assert used == "UTF-8"
    assert "+ADw-b+AD4-" in text
    assert "+ADw-b+AD4-important" in extract(raw).text
    assert decode_html(raw, "utf-7")[1] == "UTF-8"  # an HTTP label is treated the same


def test_latin1_label_decodes_as_windows_1252() -> None:
    raw = _page('<meta charset="iso-8859-1">', "\u201cquoted\u201d \u20ac5 " + PROSE).encode(
        "cp1252"
    )
    text, used = decode_html(raw)
    assert used == "windows-1252"
    assert "\u201cquoted\u201d \u20ac5" in text  # bytes 0x93, 0x94, 0x80 are cp1252, not C1


def test_windows_1252_decodes_every_byte_like_a_browser() -> None:
    assert decode_as(b"a\x81b\x9dc\x80", "windows-1252", strict=True) == "a\x81b\x9dc\u20ac"


def test_gb2312_label_reads_gbk_and_gb18030_text() -> None:
    chinese = "人权组织公布了关于记者被拘留的报告，专家确认文件是真实的。" * 4
    raw = _page('<meta charset="gb2312">', chinese).encode("gb18030")
    text, used = decode_html(raw)
    assert used == "GBK"
    assert chinese in text
    assert chinese in extract(raw).text


def test_replacement_encodings_decode_to_u_fffd() -> None:
    raw = _page('<meta charset="iso-2022-kr">').encode("ascii", "xmlcharrefreplace")
    text, used = decode_html(raw)
    assert (text, used) == ("\ufffd", "replacement")
    result = extract(raw)
    assert result.text == "" and result.reason is not None
    assert decode_as(b"", "replacement", strict=True) == ""


def test_x_user_defined() -> None:
    # Declared in the document, x-user-defined means windows-1252 (HTML prescan) ...
    raw = b'<meta charset="x-user-defined"><p>caf\xe9</p>'
    assert declared_charset(raw) == "windows-1252"
    assert "café" in decode_html(raw)[0]
    # ... from HTTP, bytes 0x80-0xFF become U+F780-U+F7FF.
    text, used = decode_html(b"<p>caf\xe9</p>", "x-user-defined")
    assert used == "x-user-defined"
    assert text == "<p>caf\uf7e9</p>"


def test_a_declared_utf16_in_an_ascii_document_means_utf8() -> None:
    raw = _page('<meta charset="utf-16">', "Über " + PROSE).encode("utf-8")
    assert declared_charset(raw) == "UTF-8"
    assert decode_html(raw) == (raw.decode("utf-8"), "UTF-8")


def test_http_utf16_is_decoded_as_utf16() -> None:
    raw = _page("", PROSE).encode("utf-16-le")
    text, used = decode_html(raw, "utf-16le")
    assert used == "UTF-16LE"
    assert PROSE in text


def test_detection_answers_only_browser_encodings() -> None:
    russian = "Правозащитники опубликовали доклад о задержаниях журналистов. " * 6
    for codec, name in (("cp1251", "windows-1251"), ("koi8-r", "KOI8-R")):
        text, used = decode_html(_page("", russian).encode(codec))
        assert (used, russian in text) == (name, True)
