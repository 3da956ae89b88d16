"""Turn HTML bytes into text: byte-order mark, then the caller's charset, then the charset the
document declares, then UTF-8, then detection, then cp1252 with replacement.

A declared charset is only trusted if the bytes decode under it without error (a page that
lies about its encoding falls through to the next step). Never raises. Does not parse HTML.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

__all__ = ["MAX_SNIFF_BYTES", "decode_html"]

#: How far into the document to look for ``<meta charset>`` (browsers use 1024; many real pages
#: put long scripts first, so we look further).
MAX_SNIFF_BYTES = 16_384

#: How many bytes charset detection looks at (detection is slow on big inputs).
MAX_DETECT_BYTES = 65_536

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE
)

# Labels a browser maps to another codec (WHATWG Encoding Standard, the common cases).
_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "sjis": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "utf8": "utf-8",
    "unicode": "utf-8",
}


def normalise_charset(label: str | None) -> str | None:
    """The Python codec name for a charset label, or None if Python does not know it."""
    if not label:
        return None
    cleaned = label.strip().strip("\"'").lower()
    cleaned = _ALIASES.get(cleaned, cleaned)
    try:
        name = codecs.lookup(cleaned).name
    except (LookupError, ValueError):
        return None
    if name in {"utf-16", "utf-16-le", "utf-16-be", "utf-32"}:
        # A declared UTF-16 in an ASCII-compatible document is a lie (WHATWG: use UTF-8).
        return "utf-8"
    return name


def declared_charset(data: bytes) -> str | None:
    """The charset named by ``<meta charset>`` or ``http-equiv`` in the first bytes."""
    match = _META_CHARSET.search(data[:MAX_SNIFF_BYTES])
    return normalise_charset(match.group(1).decode("ascii", "replace")) if match else None


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _detect(data: bytes) -> str | None:
    sample = data[:MAX_DETECT_BYTES]
    if len(data) > MAX_DETECT_BYTES:
        # Do not cut a multi-byte character in half at the end of the sample.
        sample = sample[: max(0, len(sample) - 4)]
    try:
        best = from_bytes(sample).best()
    except Exception:  # pragma: no cover - detection must never break extraction
        return None
    return normalise_charset(best.encoding) if best is not None else None


def decode_html(data: bytes, charset: str | None = None) -> tuple[str, str]:
    """Decode ``data``; return the text and the codec name that was used."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, "replace"), codec
    candidates: list[str] = []
    for label in (normalise_charset(charset), declared_charset(data)):
        if label and label not in candidates:
            candidates.append(label)
    for codec in candidates:
        text = _strict(data, codec)
        if text is not None:
            if codec == "cp1252" and not data.isascii() and _strict(data, "utf-8") is not None:
                # Valid UTF-8 with non-ASCII bytes is almost never real cp1252 text.
                return data.decode("utf-8"), "utf-8"
            return text, codec
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    detected = _detect(data)
    if detected:
        text = _strict(data, detected)
        if text is not None:
            return text, detected
    # Best effort: the declared charset if any, else cp1252; undecodable bytes are replaced.
    codec = candidates[0] if candidates else (detected or "cp1252")
    return data.decode(codec, "replace"), codec
