"""Remove HTTP content codings from a body, streaming, with a hard bound on the output.

:func:`decode_chunks` undoes ``gzip`` (``x-gzip``), ``deflate``, ``br`` and ``zstd``, one
coding or a stack of up to :data:`MAX_CODINGS` (``Content-Encoding: gzip, br`` was gzipped,
then brotli-compressed: it is decoded br first). Every decoder is fed at most
:data:`_WINDOW` bytes of input per call and asked for a bounded amount of output, so no more
than ``limit + 1`` decoded bytes are ever held, and decoding stops as soon as the limit is
passed: a body of a few kilobytes that expands to gigabytes (a decompression bomb) costs
a few milliseconds and about the limit in memory. Between stacked codings, the bytes one
decoder hands the next are bounded too (:func:`_inner_cap`).

What follows the end of the compressed data: further gzip members and zstd frames are
decoded in turn (at most :data:`MAX_GZIP_MEMBERS` / :data:`MAX_ZSTD_FRAMES`), other bytes
after gzip, deflate or zstd data are ignored and reported, as browsers ignore them; so are bytes
after brotli data (``brotlicffi`` refuses them, so the stage finds the end of the stream
itself: see :class:`_BrotliStage`). Corrupt data gives the raw bytes, with the problem named.

Decoders: zlib (standard library) for gzip and deflate; ``brotlicffi`` (>= 1.2, the first
with ``output_buffer_limit``) for br; the standard library's ``compression.zstd`` (Python
3.14) or its backport ``backports.zstd`` for zstd, with the 8 MiB window limit RFC 9659
sets for the zstd content coding. Without brotlicffi or a zstd module, such bodies come back
raw and the problem says which package is missing. This module never decodes a transfer
coding (``chunked``), and it reads no file: it is given the chunks.
"""

from __future__ import annotations

import functools
import sys
import zlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd

#: Most content codings one body may stack; more are not decoded (urllib3 allows five).
MAX_CODINGS = 4
#: Most gzip members one body is decoded from; past it the rest is not decoded. (Each
#: member costs a new decoder: a body of empty 20-byte members, which never reaches the output
#: limit, took 0.12 s a MB. No server sends more than a handful.)
MAX_GZIP_MEMBERS = 10_000
#: Most zstd frames one body is decoded from, for the same reason (an empty frame is 9 bytes).
MAX_ZSTD_FRAMES = 10_000
#: The largest zstd window accepted, as log2: 8 MiB, the limit RFC 9659 makes a requirement
#: for the zstd content coding (a frame that needs more is refused as corrupt). It bounds the
#: decoder's own memory, which the output limit does not.
ZSTD_WINDOW_LOG_MAX = 23
#: Input handed to a decoder per call. After the end of a gzip member or zstd frame a
#: decoder copies what follows it, so a larger piece made many small members cost time
#: quadratic in the piece's size; brotlicffi copies the unconsumed input at every call.
_WINDOW = 4096
#: Output asked of a decoder per call (brotlicffi allocates and zeroes the whole size asked).
_STEP = 1 << 16
#: brotli input kept to decode again when the stream turns out to be followed by other bytes
#: (see :class:`_BrotliStage`); past it, such a body is corrupt here.
_BROTLI_REPLAY_BYTES = 4 * 2**20

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: A skippable zstd frame starts with 0x184D2A50 to 0x184D2A5F, little-endian.
_SKIPPABLE_TAIL = b"\x2a\x4d\x18"


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """A body with its content coding removed, or the raw bytes with the reason why not."""

    data: bytes
    truncated: bool  # more decoded bytes existed than the limit allowed
    decoded: bool  # False: ``data`` are the raw (still encoded) bytes, see ``problem``
    problem: str | None = None


def content_codings(header_value: str | None) -> list[str]:
    """The content codings named by a ``Content-Encoding`` value, in the order applied."""
    if not header_value:
        return []
    codings = [c.strip().lower() for c in header_value.split(",")]
    return [c for c in codings if c and c != "identity"]


def content_encoding(fields: Iterable[tuple[str, str]]) -> str | None:
    """The ``Content-Encoding`` of a header block: its field lines joined with ``, ``, as
    RFC 9110 (section 5.3) reads several lines of one field; None if there is none."""
    values = [value for name, value in fields if name.lower() == "content-encoding"]
    return ", ".join(values) if values else None


class _CorruptDataError(Exception):
    """A decoder refused its input."""

    def __init__(self, coding: str, detail: str) -> None:
        super().__init__(detail)
        self.coding = coding


class _NoDecoderError(Exception):
    """No decoder for a coding can be had here (unknown coding, package not installed)."""


class _StoppedError(Exception):
    """Decoding stopped before the end of the body; the message says why."""


# --- one coding's decoder --------------------------------------------------------------------


class _Stage(ABC):
    """One content coding's decoder: input queued by :meth:`feed`, output drawn by
    :meth:`read`, never more than :data:`_WINDOW` input bytes given to the decoder at once.

    A gzip member or zstd frame that ends is followed by the next one, if the bytes after it
    start one (:meth:`_starts_member`); other bytes after the end are not decoded at all
    (``trailing``), nor is anything after :attr:`max_members` members (``too_many``)."""

    unit = "member"
    max_members = 1

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._pending: deque[memoryview] = deque()
        self.members = 1
        self.trailing = False  # bytes followed the end of the compressed data
        self.too_many = False  # more than max_members members: the rest not decoded
        self._restart()

    @property
    def ended(self) -> bool:
        """No more input is decoded (see the class docstring)."""
        return self.trailing or self.too_many

    def feed(self, data: bytes) -> None:
        if data and not self.ended:
            self._pending.append(memoryview(data))

    def read(self, max_length: int) -> bytes:
        """At most ``max_length`` (>= 1) decoded bytes; ``b""`` once the input fed so far is
        used up, or the data has ended. :class:`_CorruptDataError` for data it refuses."""
        step = min(max_length, _STEP)
        while not self.ended:
            if self._has_output():
                out = self._decode(b"", step)
            else:
                window = self._window()
                if window is None:
                    return b""
                if self._at_end():
                    self._next_member(window)
                    continue
                out = self._decode(window, step)
            rest = self._unused() if self._at_end() else b""
            if rest:
                self._pending.appendleft(memoryview(rest))
            if out:
                return out
        return b""

    def _window(self) -> memoryview | None:
        if not self._pending:
            return None
        head = self._pending[0]
        if len(head) <= _WINDOW:
            return self._pending.popleft()
        self._pending[0] = head[_WINDOW:]
        return head[:_WINDOW]

    def _next_member(self, data: memoryview) -> None:
        """``data`` follows the end of a member: the next member's start, or trailing bytes."""
        if not self._starts_member(bytes(data[:4])):
            self.trailing = True
        elif self.members >= self.max_members:
            self.too_many = True
        else:
            self.members += 1
            self._restart()
            self._pending.appendleft(data)
            return
        self._pending.clear()

    def finished(self) -> bool:
        """True if the compressed data ended properly (nothing of it left undecoded)."""
        return self._at_end() and not self._pending

    def problem(self) -> str | None:
        """What went wrong with this coding's data once all input was fed, if anything."""
        if self.too_many:
            return (f"more than {self.max_members} {self.coding} {self.unit}s; the rest was "
                    "not decoded")
        if not self.finished():
            return f"{self.coding} stream is truncated"
        if self.trailing:
            return f"bytes after the end of the {self.coding} data were ignored"
        return None

    def _starts_member(self, head: bytes) -> bool:
        """Whether ``head`` (the first bytes after a member's end) may begin another member."""
        return False

    @abstractmethod
    def _restart(self) -> None:
        """A fresh decoder (at the start, and for each further member)."""

    @abstractmethod
    def _decode(self, data: bytes | memoryview, max_length: int) -> bytes:
        """One decoder call on ``data`` (``b""``: output still held from earlier input)."""

    @abstractmethod
    def _has_output(self) -> bool:
        """The decoder may give output without more input (its last call hit the limit)."""

    @abstractmethod
    def _at_end(self) -> bool:
        """The current member has ended."""

    def _unused(self) -> bytes:
        """Input of the last call that came after the end of the member."""
        return b""


class _ZlibStage(_Stage):
    """gzip (several members allowed) or deflate (zlib-wrapped, or raw as some servers send).

    zlib keeps every byte given after the end of the data in ``unused_data`` and copies it
    again at every call: an ended decoder is given no more input (:meth:`_Stage.read` hands
    what follows to the next member, or drops it)."""

    max_members = MAX_GZIP_MEMBERS

    def __init__(self, coding: str) -> None:
        self._gzip = coding in ("gzip", "x-gzip")
        self._obj: zlib._Decompress | None = None
        self._probe = b""
        self._full = False  # the last call gave all the output it was allowed
        super().__init__(coding)

    def _restart(self) -> None:
        self._obj = zlib.decompressobj(zlib.MAX_WBITS | 16) if self._gzip else None
        self._full = False

    def _starts_member(self, head: bytes) -> bool:
        return self._gzip and _GZIP_MAGIC.startswith(head[:2])

    def _start_deflate(self, data: bytes | memoryview) -> bytes | None:
        """The probe so far, once its first two bytes tell zlib-wrapped from raw deflate."""
        self._probe += data
        if len(self._probe) < 2:
            return None
        cmf, flg = self._probe[0], self._probe[1]
        wrapped = (cmf & 0x0F) == 8 and ((cmf << 8) | flg) % 31 == 0
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        probe, self._probe = self._probe, b""
        return probe

    def _decode(self, data: bytes | memoryview, max_length: int) -> bytes:
        if self._obj is None:
            probe = self._start_deflate(data)
            if probe is None:
                return b""
            data = probe
        assert self._obj is not None
        try:
            out = self._obj.decompress(data or self._obj.unconsumed_tail, max_length)
        except zlib.error as exc:
            raise _CorruptDataError(self.coding, str(exc)) from exc
        self._full = len(out) == max_length
        return out

    def _has_output(self) -> bool:
        obj = self._obj
        return obj is not None and not obj.eof and (self._full or bool(obj.unconsumed_tail))

    def _at_end(self) -> bool:
        return self._obj is not None and self._obj.eof

    def _unused(self) -> bytes:
        return self._obj.unused_data if self._obj is not None else b""


class _BrotliStage(_Stage):
    """br, with brotlicffi's bounded calls: ``Decompressor.process(data,
    output_buffer_limit=n)`` gives at most ``n`` bytes and keeps the rest of the output (and
    of the input) until ``can_accept_more_data()`` is true again. One brotli stream.

    Bytes after the end of the stream are ignored, as Chromium ignores them; brotlicffi,
    given them in the call that ends the stream, raises and drops that call's output. The
    stage then decodes again from the start (the input it fed is kept for that, up to
    :data:`_BROTLI_REPLAY_BYTES`) and feeds that last piece one byte at a time to find where
    the stream ends. Bytes after the end that arrive in later pieces never reach the decoder.
    """

    def __init__(self, coding: str) -> None:
        try:
            import brotlicffi  # noqa: PLC0415 - only for a br body
        except ImportError as exc:
            raise _NoDecoderError("brotlicffi is not installed") from exc
        if not hasattr(brotlicffi.Decompressor, "can_accept_more_data"):
            raise _NoDecoderError(f"brotlicffi {brotlicffi.__version__} is older than 1.2 "
                                  "(no bounded decompression)")
        self._module: Any = brotlicffi
        self._obj: Any = None
        self._fed: bytearray | None = bytearray()  # input fed so far (None: past the bound)
        self._last = b""  # the piece fed last
        self._since_last = 0  # output bytes handed on since it was fed
        self._tail = memoryview(b"")  # the piece in which the stream ends, to feed bytewise
        self._skip = 0  # output of the tail handed on already, to drop as it comes again
        super().__init__(coding)

    def _restart(self) -> None:
        self._obj = self._module.Decompressor()

    def _decode(self, data: bytes | memoryview, max_length: int) -> bytes:
        if self._tail:
            return self._tail_output(max_length)
        piece = bytes(data)  # (b"": output held back from earlier input)
        if piece:
            self._last, self._since_last = piece, 0
            if self._fed is not None and len(self._fed) + len(piece) <= _BROTLI_REPLAY_BYTES:
                self._fed += piece
            else:
                self._fed = None
        try:
            out: bytes = self._obj.process(piece, output_buffer_limit=max_length)
        except self._module.error as exc:
            if not (self._fed is not None and self._last and self._obj.is_finished()):
                raise _CorruptDataError(self.coding, _brotli_message(exc)) from exc
        else:
            self._since_last += len(out)
            return out
        # the stream ended inside the last piece and bytes followed it
        try:
            self._replay()
        except self._module.error as exc:  # (the same input decoded before: never expected)
            raise _CorruptDataError(self.coding, _brotli_message(exc)) from exc
        return self._tail_output(max_length)

    def _replay(self) -> None:
        """A fresh decoder brought to where the last one was before the last piece (the
        output, handed on already, dropped), with that piece to be fed byte by byte."""
        assert self._fed is not None
        self._obj = self._module.Decompressor()
        before = memoryview(self._fed)[: len(self._fed) - len(self._last)]
        for start in range(0, len(before), _WINDOW):
            self._obj.process(bytes(before[start : start + _WINDOW]), output_buffer_limit=_STEP)
            while not self._obj.can_accept_more_data():
                self._obj.process(b"", output_buffer_limit=_STEP)
        self._fed = None
        self._tail, self._skip = memoryview(self._last), self._since_last

    def _tail_output(self, max_length: int) -> bytes:
        """Output held back, else the next bytes of the piece in which the stream ends (what
        of its output was handed on before is dropped)."""
        step = min(max_length, _WINDOW)  # (brotlicffi zeroes the whole size asked, per call)
        try:
            while True:
                if not self._obj.can_accept_more_data():
                    out: bytes = self._obj.process(b"", output_buffer_limit=step)
                elif self._tail and not self._obj.is_finished():
                    byte, self._tail = self._tail[:1], self._tail[1:]
                    out = self._obj.process(bytes(byte), output_buffer_limit=step)
                else:
                    return b""
                if self._skip:
                    dropped = min(self._skip, len(out))
                    out, self._skip = out[dropped:], self._skip - dropped
                if out:
                    return out
        except self._module.error as exc:
            raise _CorruptDataError(self.coding, _brotli_message(exc)) from exc

    def _has_output(self) -> bool:
        return not self._obj.can_accept_more_data() or (
            bool(self._tail) and not self._obj.is_finished())

    def _at_end(self) -> bool:
        return bool(self._obj.is_finished())

    def _unused(self) -> bytes:
        rest, self._tail = bytes(self._tail), memoryview(b"")
        return rest


def _brotli_message(exc: Exception) -> str:
    """brotlicffi's error text (some of its messages are bytes)."""
    text = exc.args[0] if exc.args else type(exc).__name__
    return text.decode("ascii", "replace") if isinstance(text, bytes) else str(text)


class _ZstdStage(_Stage):
    """zstd, with the standard library's bounded decoder (``compression.zstd``, Python 3.14,
    or ``backports.zstd``): ``ZstdDecompressor.decompress(data, max_length)`` with ``eof``,
    ``needs_input`` and ``unused_data``, as zlib's. Several frames (skippable ones included)
    are decoded in turn, at most :data:`MAX_ZSTD_FRAMES`."""

    unit = "frame"
    max_members = MAX_ZSTD_FRAMES

    def __init__(self, coding: str) -> None:
        self._module = _zstd_module()
        self._obj: zstd.ZstdDecompressor | None = None
        super().__init__(coding)

    def _restart(self) -> None:
        window = self._module.DecompressionParameter.window_log_max
        self._obj = self._module.ZstdDecompressor(options={window: ZSTD_WINDOW_LOG_MAX})

    def _starts_member(self, head: bytes) -> bool:
        skippable = head[0] & 0xF0 == 0x50 and _SKIPPABLE_TAIL.startswith(head[1:4])
        return skippable or _ZSTD_MAGIC.startswith(head[:4])

    def _decode(self, data: bytes | memoryview, max_length: int) -> bytes:
        assert self._obj is not None
        try:
            return self._obj.decompress(data, max_length)
        except self._module.ZstdError as exc:
            raise _CorruptDataError(self.coding, str(exc)) from exc

    def _has_output(self) -> bool:
        assert self._obj is not None
        return not self._obj.needs_input and not self._obj.eof

    def _at_end(self) -> bool:
        return self._obj is not None and self._obj.eof

    def _unused(self) -> bytes:
        assert self._obj is not None
        return self._obj.unused_data


def _zstd_module() -> Any:
    """``compression.zstd`` (Python 3.14), else ``backports.zstd``."""
    try:
        if sys.version_info >= (3, 14):
            from compression import zstd as module  # noqa: PLC0415 - only for a zstd body
        else:
            from backports import zstd as module  # noqa: PLC0415 - only for a zstd body
    except ImportError as exc:
        package = "compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd"
        raise _NoDecoderError(f"{package} is not installed") from exc
    return module


_STAGES: dict[str, type[_Stage]] = {
    "gzip": _ZlibStage,
    "x-gzip": _ZlibStage,
    "deflate": _ZlibStage,
    "br": _BrotliStage,
    "zstd": _ZstdStage,
}


# --- the stack of codings --------------------------------------------------------------------


def _inner_cap(limit: int) -> int:
    """Most bytes one decoder of a stack may hand the next: compressed data is not twice
    the size of what it decodes to (stored blocks add 5 bytes per 64 KiB), so more means
    data made to cost work (say, a brotli bomb of empty deflate blocks) and is not decoded."""
    return 2 * limit + (1 << 20)


class _Stack:
    """The decoders of a body's codings in decode order (the last one applied first), each
    fed from the one before it, :data:`_STEP` bytes at a time."""

    def __init__(self, codings: list[str], limit: int) -> None:
        self.stages = [_STAGES[coding](coding) for coding in reversed(codings)]
        self._cap = _inner_cap(limit)
        self._handed = [0] * len(self.stages)

    @property
    def ended(self) -> bool:
        """No further input can change the output (some decoder's data has ended)."""
        return any(stage.ended for stage in self.stages)

    def feed(self, chunk: bytes) -> None:
        self.stages[0].feed(chunk)

    def read(self, max_length: int) -> bytes:
        """At most ``max_length`` fully decoded bytes; ``b""`` once the input is used up."""
        return self._pull(len(self.stages) - 1, max_length)

    def _pull(self, index: int, max_length: int) -> bytes:
        stage = self.stages[index]
        while True:
            out = stage.read(max_length)
            if out or index == 0 or stage.ended:
                return out
            data = self._pull(index - 1, _STEP)
            if not data:
                return b""
            self._hand(index - 1, len(data))
            stage.feed(data)

    def _hand(self, index: int, size: int) -> None:
        self._handed[index] += size
        if self._handed[index] > self._cap:
            giver, taker = self.stages[index].coding, self.stages[index + 1].coding
            raise _StoppedError(f"the {giver} data gave more than {self._cap} bytes of {taker} "
                           "data; the rest was not decoded")

    def problem(self) -> str | None:
        """The problems of the decoders, once all input was fed; a decoder whose data had
        ended stopped the ones before it, which are not judged."""
        last_ended = max((i for i, s in enumerate(self.stages) if s.ended), default=0)
        problems = [p for s in self.stages[last_ended:] if (p := s.problem()) is not None]
        return "; ".join(problems) or None


def decode_chunks(chunks: Iterable[bytes], content_encoding: str | None, limit: int) -> DecodedBody:
    """Remove the content codings from a stream of bytes, producing at most ``limit`` bytes.

    gzip, x-gzip, deflate, br and zstd are decoded, stacked up to :data:`MAX_CODINGS` deep;
    anything else (an unknown coding, more codings, a decoder not installed), or corrupt
    data, gives the raw bytes (up to ``limit``) with ``decoded=False`` and the problem named.
    Truncated data, and bytes ignored after the end of the data, give what was decoded, with
    the problem named.
    """
    codings = content_codings(content_encoding)
    if not codings:
        return _collect_raw(chunks, limit, decoded=True, problem=None)
    try:
        stack = _stack(codings, limit)
    except _NoDecoderError as exc:
        return _collect_raw(chunks, limit, decoded=False,
                            problem=f"content coding {content_encoding!r} not decoded: {exc}")
    return _decode(stack, chunks, limit)


def _decode(stack: _Stack, chunks: Iterable[bytes], limit: int) -> DecodedBody:
    """:func:`decode_chunks` once the decoders are made."""
    raw = bytearray()  # the encoded bytes seen so far, kept only up to ``limit`` for fallback
    out = bytearray()
    iterator = iter(chunks)
    fed = 0
    try:
        for chunk in iterator:
            fed += len(chunk)
            if len(raw) < limit:
                raw += chunk[: limit - len(raw)]
            stack.feed(chunk)
            if _drain(stack, out, limit):
                return DecodedBody(_take(out), truncated=True, decoded=True)
            if stack.ended:
                break
        if not fed:  # an empty body (204, 304, HEAD) says nothing about its coding
            return DecodedBody(b"", truncated=False, decoded=True)
        problem = stack.problem()
    except _StoppedError as exc:
        problem = str(exc)
    except _CorruptDataError as exc:
        rest = _collect_raw(iterator, limit - len(raw), decoded=False, problem=None)
        data = bytes(raw) + rest.data
        return DecodedBody(
            data[:limit],
            truncated=fed > limit or rest.truncated,
            decoded=False,
            problem=f"{exc.coding} data is corrupt ({exc}); raw bytes returned",
        )
    return DecodedBody(_take(out), truncated=False, decoded=True, problem=problem)


def undecodable(content_encoding: str | None) -> str | None:
    """Why a body of this ``Content-Encoding`` would come back raw here (an unknown coding,
    too many, a decoder package not installed), or None if it would be decoded."""
    try:
        _stack(content_codings(content_encoding), 0)
    except _NoDecoderError as exc:
        return str(exc)
    return None


def decodable_codings() -> list[str]:
    """The content codings decoded here (br and zstd only where their packages are)."""
    return list(_decodable())


@functools.cache
def _decodable() -> tuple[str, ...]:
    # found once a process (it builds a decoder of each kind): every capture records it
    return tuple(coding for coding in _STAGES if undecodable(coding) is None)


def _stack(codings: list[str], limit: int) -> _Stack:
    """The decoders for ``codings``; :class:`_NoDecoderError` if some cannot be had."""
    if len(codings) > MAX_CODINGS:
        raise _NoDecoderError(f"more than {MAX_CODINGS} codings")
    unknown = [coding for coding in codings if coding not in _STAGES]
    if unknown:
        raise _NoDecoderError(f"{unknown[0]!r} is not a coding preserve decodes")
    return _Stack(codings, limit)


def _drain(stack: _Stack, out: bytearray, limit: int) -> bool:
    """Append to ``out`` all the input fed so far decodes to, but never more than
    ``limit + 1`` bytes in all; True (``out`` then cut to ``limit``) if there were more."""
    while len(out) <= limit:
        piece = stack.read(limit + 1 - len(out))
        if not piece:
            return False
        out += piece
    del out[limit:]
    return True


def _collect_raw(
    chunks: Iterable[bytes], limit: int, *, decoded: bool, problem: str | None
) -> DecodedBody:
    out = bytearray()
    for chunk in chunks:
        out += chunk[: limit + 1 - len(out)]  # never more than one byte past the limit
        if len(out) > limit:
            del out[limit:]
            return DecodedBody(_take(out), truncated=True, decoded=decoded, problem=problem)
    return DecodedBody(_take(out), truncated=False, decoded=decoded, problem=problem)


def _take(buffer: bytearray) -> bytes:
    """``bytes(buffer)``, emptying the buffer (its memory is freed at once, not later)."""
    data = bytes(buffer)
    buffer.clear()
    return data


__all__ = [
    "MAX_CODINGS",
    "MAX_GZIP_MEMBERS",
    "MAX_ZSTD_FRAMES",
    "ZSTD_WINDOW_LOG_MAX",
    "DecodedBody",
    "content_codings",
    "content_encoding",
    "decodable_codings",
    "decode_chunks",
    "undecodable",
]
