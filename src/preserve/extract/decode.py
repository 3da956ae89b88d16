"""Turn HTML bytes into text with the encodings browsers support (the WHATWG Encoding
Standard): byte-order mark, then the caller's charset (HTTP), then the charset the document
declares, then UTF-8, then detection, then windows-1252.

A label that is not in the standard's table (``utf-7``, ``ebcdic``...) is treated as absent.
A declared charset is only trusted if the bytes decode under it without error (a page that
lies about its encoding falls through to the next step); the ``replacement`` encoding
(ISO-2022-KR, HZ...) decodes to U+FFFD, as in a browser. Never raises. Does not parse HTML.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from .encodings import CODECS, decode_as, lookup, whatwg_name_of_codec

__all__ = ["MAX_SNIFF_BYTES", "declared_charset", "decode_html", "normalise_charset"]

#: How far into the document to look for ``<meta charset>`` (browsers use 1024; many real pages
#: put long scripts first, so we look further).
MAX_SNIFF_BYTES = 16_384

#: How many bytes charset detection looks at (detection is slow on big inputs).
MAX_DETECT_BYTES = 65_536

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "UTF-8"),
    (codecs.BOM_UTF16_LE, "UTF-16LE"),
    (codecs.BOM_UTF16_BE, "UTF-16BE"),
)

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE
)

# What detection may answer: the encodings a browser decodes and also detects (as Firefox's
# detector does: not UTF-16 or the Mac encodings), as Python codec names.
_UNDETECTED = frozenset({"UTF-16BE", "UTF-16LE", "macintosh", "x-mac-cyrillic"})
_DETECTABLE = sorted({codec for name, codec in CODECS.items() if codec and name not in _UNDETECTED})


def normalise_charset(label: str | None) -> str | None:
    """The WHATWG encoding name for a charset label, or None if browsers do not know it."""
    return lookup(label.strip().strip("\"'") if label else label)


def declared_charset(data: bytes) -> str | None:
    """The encoding named by ``<meta charset>`` or ``http-equiv`` in the first bytes.

    As in the HTML standard's prescan, a declared UTF-16 means UTF-8 (the bytes being read as
    ASCII prove it is not UTF-16), and ``x-user-defined`` means windows-1252.
    """
    match = _META_CHARSET.search(data[:MAX_SNIFF_BYTES])
    if not match:
        return None
    name = normalise_charset(match.group(1).decode("ascii", "replace"))
    if name in {"UTF-16LE", "UTF-16BE"}:
        return "UTF-8"
    if name == "x-user-defined":
        return "windows-1252"
    return name


def _detect(data: bytes) -> str | None:
    sample = data[:MAX_DETECT_BYTES]
    if len(data) > MAX_DETECT_BYTES:
        # Do not cut a multi-byte character in half at the end of the sample.
        sample = sample[: max(0, len(sample) - 4)]
    try:
        best = from_bytes(sample, cp_isolation=_DETECTABLE).best()
    except Exception:  # pragma: no cover - detection must never break extraction
        return None
    return whatwg_name_of_codec(best.encoding) if best is not None else None


def decode_html(data: bytes, charset: str | None = None) -> tuple[str, str]:
    """Decode ``data``; return the text and the WHATWG name of the encoding used."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return decode_as(data[len(bom) :], name, strict=False) or "", name
    candidates: list[str] = []
    for label in (normalise_charset(charset), declared_charset(data)):
        if label and label not in candidates:
            candidates.append(label)
    for name in candidates:
        text = decode_as(data, name, strict=True)
        if text is not None:
            if name == "windows-1252" and not data.isascii() and _utf8(data) is not None:
                # Valid UTF-8 with non-ASCII bytes is almost never real windows-1252 text.
                return data.decode("utf-8"), "UTF-8"
            return text, name
    text = _utf8(data)
    if text is not None:
        return text, "UTF-8"
    detected = _detect(data)
    if detected:
        text = decode_as(data, detected, strict=True)
        if text is not None:
            return text, detected
    # Best effort: the declared charset if any, else windows-1252; bad bytes are replaced.
    name = candidates[0] if candidates else (detected or "windows-1252")
    return decode_as(data, name, strict=False) or "", name


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
