"""URL parsing and normalisation for capture: httpx's parser, without importing httpx.

A capture validates and normalises its URL before the request goes out; importing httpx for
that loaded httpx's client, models and auth, and with them ``http.cookiejar``,
``urllib.request``, ``email`` and ``mimetypes``: a fifth of the instructions ``preserve capture
URL`` ran before its first byte went out (115 of 569 million). httpcore sends the request and
takes the scheme, host, port and target as bytes, so nothing else of httpx is needed.

:func:`urlparse` and what it uses are httpx 0.29.0's ``httpx/_urlparse.py``, copied unchanged
but for these: :class:`InvalidURL` is defined here, ``idna`` is imported by the one branch that
uses it (a host name that is not ASCII), the search for a control character is one helper,
an error raised in place of another does not chain it (``from None``: the message is the
same), and names, lines and the spelling of the character sets follow this project's style.
:class:`URL` is the part of ``httpx.URL`` (``httpx/_urls.py``) that preserve uses, with the
same semantics: the properties it offers, ``copy_with`` with string or None components,
``join``, equality, hashing, ``str`` and ``repr``. ``tests/test_urls.py`` checks that both
give what httpx gives, for a corpus of hostile and ordinary URLs and for generated ones.
:func:`url_identity` (preserve's own) gives the one form every spelling of a URL shares, for
lookups by URL.

httpx is copyright (c) 2019, Encode OSS Ltd, all rights reserved, and is distributed under the
BSD 3-Clause licence: redistribution and use in source and binary forms, with or without
modification, are permitted provided that (1) redistributions of source code retain the
copyright notice, this list of conditions and the following disclaimer; (2) redistributions in
binary form reproduce the copyright notice, this list of conditions and the following
disclaimer in the documentation and/or other materials provided with the distribution; (3)
neither the name of the copyright holder nor the names of its contributors may be used to
endorse or promote products derived from this software without specific prior written
permission. THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY
EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF
MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE
COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE
GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND
ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE
OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
POSSIBILITY OF SUCH DAMAGE.
"""

from __future__ import annotations

import ipaddress
import re
import typing
from urllib.parse import unquote, urljoin


class InvalidURL(Exception):  # noqa: N818 - httpx's name
    """URL is improperly formed or cannot be parsed (``httpx.InvalidURL``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


MAX_URL_LENGTH = 65536

# https://datatracker.ietf.org/doc/html/rfc3986.html#section-2.3
UNRESERVED_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
SUB_DELIMS = "!$&'()*+,;="

PERCENT_ENCODED_REGEX = re.compile("%[A-Fa-f0-9]{2}")

# https://url.spec.whatwg.org/#percent-encoded-bytes

# The fragment percent-encode set is the C0 control percent-encode set
# and U+0020 SPACE, U+0022 ("), U+003C (<), U+003E (>), and U+0060 (`).
FRAG_SAFE = "".join([chr(i) for i in range(0x20, 0x7F) if i not in (0x20, 0x22, 0x3C, 0x3E, 0x60)])

# The query percent-encode set is the C0 control percent-encode set
# and U+0020 SPACE, U+0022 ("), U+0023 (#), U+003C (<), and U+003E (>).
_QUERY_UNSAFE = (0x20, 0x22, 0x23, 0x3C, 0x3E)
QUERY_SAFE = "".join([chr(i) for i in range(0x20, 0x7F) if i not in _QUERY_UNSAFE])

# The path percent-encode set is the query percent-encode set
# and U+003F (?), U+0060 (`), U+007B ({), and U+007D (}).
_PATH_UNSAFE = (*_QUERY_UNSAFE, 0x3F, 0x60, 0x7B, 0x7D)
PATH_SAFE = "".join([chr(i) for i in range(0x20, 0x7F) if i not in _PATH_UNSAFE])

# The userinfo percent-encode set is the path percent-encode set
# and U+002F (/), U+003A (:), U+003B (;), U+003D (=), U+0040 (@),
# U+005B ([) to U+005E (^), inclusive, and U+007C (|).
_USERNAME_UNSAFE = (*_PATH_UNSAFE, 0x2F, 0x3A, 0x3B, 0x3D, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x7C)
USERNAME_SAFE = "".join([chr(i) for i in range(0x20, 0x7F) if i not in _USERNAME_UNSAFE])
PASSWORD_SAFE = USERNAME_SAFE
# Note... The terminology 'userinfo' percent-encode set in the WHATWG document
# is used for the username and password quoting. For the joint userinfo component
# we remove U+003A (:) from the safe set.
_USERINFO_UNSAFE = (*_PATH_UNSAFE, 0x2F, 0x3B, 0x3D, 0x40, 0x5B, 0x5C, 0x5D, 0x5E, 0x7C)
USERINFO_SAFE = "".join([chr(i) for i in range(0x20, 0x7F) if i not in _USERINFO_UNSAFE])


# {scheme}:      (optional)
# //{authority}  (optional)
# {path}
# ?{query}       (optional)
# #{fragment}    (optional)
URL_REGEX = re.compile(
    (
        r"(?:(?P<scheme>{scheme}):)?"
        r"(?://(?P<authority>{authority}))?"
        r"(?P<path>{path})"
        r"(?:\?(?P<query>{query}))?"
        r"(?:#(?P<fragment>{fragment}))?"
    ).format(
        scheme="([a-zA-Z][a-zA-Z0-9+.-]*)?",
        authority="[^/?#]*",
        path="[^?#]*",
        query="[^#]*",
        fragment=".*",
    )
)

# {userinfo}@    (optional)
# {host}
# :{port}        (optional)
AUTHORITY_REGEX = re.compile(
    (
        r"(?:(?P<userinfo>{userinfo})@)?"
        r"(?P<host>{host})"
        r":?(?P<port>{port})?"
    ).format(
        userinfo=".*",  # Any character sequence.
        host="(\\[.*\\]|[^:@]*)",  # Either any character sequence excluding ':' or '@',
        # or an IPv6 address enclosed within square brackets.
        port=".*",  # Any character sequence.
    )
)


# If we call urlparse with an individual component, then we need to regex
# validate that component individually.
# Note that we're duplicating the same strings as above. Shock! Horror!!
COMPONENT_REGEX = {
    "scheme": re.compile("([a-zA-Z][a-zA-Z0-9+.-]*)?"),
    "authority": re.compile("[^/?#]*"),
    "path": re.compile("[^?#]*"),
    "query": re.compile("[^#]*"),
    "fragment": re.compile(".*"),
    "userinfo": re.compile("[^@]*"),
    "host": re.compile("(\\[.*\\]|[^:]*)"),
    "port": re.compile(".*"),
}


# We use these simple regexs as a first pass before handing off to
# the stdlib 'ipaddress' module for IP address validation.
IPV4_STYLE_HOSTNAME = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")
IPV6_STYLE_HOSTNAME = re.compile(r"^\[.*\]$")


class ParseResult(typing.NamedTuple):
    scheme: str
    userinfo: str
    host: str
    port: int | None
    path: str
    query: str | None
    fragment: str | None

    @property
    def authority(self) -> str:
        return "".join(
            [
                f"{self.userinfo}@" if self.userinfo else "",
                f"[{self.host}]" if ":" in self.host else self.host,
                f":{self.port}" if self.port is not None else "",
            ]
        )

    @property
    def netloc(self) -> str:
        return "".join(
            [
                f"[{self.host}]" if ":" in self.host else self.host,
                f":{self.port}" if self.port is not None else "",
            ]
        )

    def copy_with(self, **kwargs: str | None) -> ParseResult:
        if not kwargs:
            return self

        defaults = {
            "scheme": self.scheme,
            "authority": self.authority,
            "path": self.path,
            "query": self.query,
            "fragment": self.fragment,
        }
        defaults.update(kwargs)
        return urlparse("", **defaults)

    def __str__(self) -> str:
        authority = self.authority
        return "".join(
            [
                f"{self.scheme}:" if self.scheme else "",
                f"//{authority}" if authority else "",
                self.path,
                f"?{self.query}" if self.query is not None else "",
                f"#{self.fragment}" if self.fragment is not None else "",
            ]
        )


#: The ASCII characters ``str.isprintable`` calls not printable: C0 controls and DEL.
_NON_PRINTABLE_ASCII = re.compile(r"[\x00-\x1f\x7f]")


def _non_printable_ascii(text: str) -> str | None:
    """The first ASCII character of ``text`` that is not printable, if any (httpx tests
    ``char.isascii() and not char.isprintable()`` character by character; the same set,
    searched in C)."""
    found = _NON_PRINTABLE_ASCII.search(text)
    return found.group() if found else None


def urlparse(url: str = "", **kwargs: str | None) -> ParseResult:
    """httpx's ``urlparse`` (see the module docstring)."""
    # Initial basic checks on allowable URLs.
    # ---------------------------------------

    # Hard limit the maximum allowable URL length.
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL("URL too long")

    # If a URL includes any ASCII control characters including \t, \r, \n,
    # then treat it as invalid.
    char = _non_printable_ascii(url)
    if char is not None:
        idx = url.find(char)
        error = f"Invalid non-printable ASCII character in URL, {char!r} at position {idx}."
        raise InvalidURL(error)

    # Some keyword arguments require special handling.
    # ------------------------------------------------

    # Coerce "port" to a string, if it is provided as an integer.
    if "port" in kwargs:
        port = kwargs["port"]
        kwargs["port"] = str(port) if isinstance(port, int) else port

    # Replace "netloc" with "host and "port".
    if "netloc" in kwargs:
        netloc = kwargs.pop("netloc") or ""
        kwargs["host"], _, kwargs["port"] = netloc.partition(":")

    # Replace "username" and/or "password" with "userinfo".
    if "username" in kwargs or "password" in kwargs:
        username = quote(kwargs.pop("username", "") or "", safe=USERNAME_SAFE)
        password = quote(kwargs.pop("password", "") or "", safe=PASSWORD_SAFE)
        kwargs["userinfo"] = f"{username}:{password}" if password else username

    # Replace "raw_path" with "path" and "query".
    if "raw_path" in kwargs:
        raw_path = kwargs.pop("raw_path") or ""
        kwargs["path"], separator, kwargs["query"] = raw_path.partition("?")
        if not separator:
            kwargs["query"] = None

    # Ensure that IPv6 "host" addresses are always escaped with "[...]".
    if "host" in kwargs:
        host = kwargs.get("host") or ""
        if ":" in host and not (host.startswith("[") and host.endswith("]")):
            kwargs["host"] = f"[{host}]"

    # If any keyword arguments are provided, ensure they are valid.
    # -------------------------------------------------------------

    for key, value in kwargs.items():
        if value is not None:
            if len(value) > MAX_URL_LENGTH:
                raise InvalidURL(f"URL component '{key}' too long")

            # If a component includes any ASCII control characters including \t, \r, \n,
            # then treat it as invalid.
            char = _non_printable_ascii(value)
            if char is not None:
                idx = value.find(char)
                error = (
                    f"Invalid non-printable ASCII character in URL {key} component, "
                    f"{char!r} at position {idx}."
                )
                raise InvalidURL(error)

            # Ensure that keyword arguments match as a valid regex.
            if not COMPONENT_REGEX[key].fullmatch(value):
                raise InvalidURL(f"Invalid URL component '{key}'")

    # The URL_REGEX will always match, but may have empty components.
    url_match = URL_REGEX.match(url)
    assert url_match is not None
    url_dict = url_match.groupdict()

    # * 'scheme', 'authority', and 'path' may be empty strings.
    # * 'query' may be 'None', indicating no trailing "?" portion.
    #   Any string including the empty string, indicates a trailing "?".
    # * 'fragment' may be 'None', indicating no trailing "#" portion.
    #   Any string including the empty string, indicates a trailing "#".
    scheme = kwargs.get("scheme", url_dict["scheme"]) or ""
    authority = kwargs.get("authority", url_dict["authority"]) or ""
    path = kwargs.get("path", url_dict["path"]) or ""
    query = kwargs.get("query", url_dict["query"])
    frag = kwargs.get("fragment", url_dict["fragment"])

    # The AUTHORITY_REGEX will always match, but may have empty components.
    authority_match = AUTHORITY_REGEX.match(authority)
    assert authority_match is not None
    authority_dict = authority_match.groupdict()

    # * 'userinfo' and 'host' may be empty strings.
    # * 'port' may be 'None'.
    userinfo = kwargs.get("userinfo", authority_dict["userinfo"]) or ""
    host = kwargs.get("host", authority_dict["host"]) or ""
    port = kwargs.get("port", authority_dict["port"])

    # Normalize and validate each component.
    # We end up with a parsed representation of the URL,
    # with components that are plain ASCII bytestrings.
    parsed_scheme: str = scheme.lower()
    parsed_userinfo: str = quote(userinfo, safe=USERINFO_SAFE)
    parsed_host: str = encode_host(host)
    parsed_port: int | None = normalize_port(port, scheme)

    has_scheme = parsed_scheme != ""
    has_authority = parsed_userinfo != "" or parsed_host != "" or parsed_port is not None
    validate_path(path, has_scheme=has_scheme, has_authority=has_authority)
    if has_scheme or has_authority:
        path = normalize_path(path)

    parsed_path: str = quote(path, safe=PATH_SAFE)
    parsed_query: str | None = None if query is None else quote(query, safe=QUERY_SAFE)
    parsed_frag: str | None = None if frag is None else quote(frag, safe=FRAG_SAFE)

    # The parsed ASCII bytestrings are our canonical form.
    # All properties of the URL are derived from these.
    return ParseResult(
        parsed_scheme,
        parsed_userinfo,
        parsed_host,
        parsed_port,
        parsed_path,
        parsed_query,
        parsed_frag,
    )


def encode_host(host: str) -> str:
    if not host:
        return ""

    if IPV4_STYLE_HOSTNAME.match(host):
        # Validate IPv4 hostnames like #.#.#.#
        #
        # From https://datatracker.ietf.org/doc/html/rfc3986/#section-3.2.2
        #
        # IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet
        try:
            ipaddress.IPv4Address(host)
        except ipaddress.AddressValueError:
            raise InvalidURL(f"Invalid IPv4 address: {host!r}") from None
        return host

    if IPV6_STYLE_HOSTNAME.match(host):
        # Validate IPv6 hostnames like [...]
        #
        # From https://datatracker.ietf.org/doc/html/rfc3986/#section-3.2.2
        #
        # "A host identified by an Internet Protocol literal address, version 6
        # [RFC3513] or later, is distinguished by enclosing the IP literal
        # within square brackets ("[" and "]").  This is the only place where
        # square bracket characters are allowed in the URI syntax."
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ipaddress.AddressValueError:
            raise InvalidURL(f"Invalid IPv6 address: {host!r}") from None
        return host[1:-1]

    if host.isascii():
        # Regular ASCII hostnames
        #
        # From https://datatracker.ietf.org/doc/html/rfc3986/#section-3.2.2
        #
        # reg-name    = *( unreserved / pct-encoded / sub-delims )
        whatwg_safe = '"`{}%|\\'
        return quote(host.lower(), safe=SUB_DELIMS + whatwg_safe)

    # IDNA hostnames
    import idna  # noqa: PLC0415 - only for a host name that is not ASCII

    try:
        return str(idna.encode(host.lower()).decode("ascii"))
    except idna.IDNAError:
        raise InvalidURL(f"Invalid IDNA hostname: {host!r}") from None


def normalize_port(port: str | int | None, scheme: str) -> int | None:
    # From https://tools.ietf.org/html/rfc3986#section-3.2.3
    #
    # "A scheme may define a default port.  For example, the "http" scheme
    # defines a default port of "80", corresponding to its reserved TCP
    # port number.  The type of port designated by the port number (e.g.,
    # TCP, UDP, SCTP) is defined by the URI scheme.  URI producers and
    # normalizers should omit the port component and its ":" delimiter if
    # port is empty or if its value would be the same as that of the
    # scheme's default."
    if port is None or port == "":
        return None

    try:
        port_as_int = int(port)
    except ValueError:
        raise InvalidURL(f"Invalid port: {port!r}") from None

    # See https://url.spec.whatwg.org/#url-miscellaneous
    default_port = {"ftp": 21, "http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
    if port_as_int == default_port:
        return None
    return port_as_int


def validate_path(path: str, has_scheme: bool, has_authority: bool) -> None:
    """
    Path validation rules that depend on if the URL contains
    a scheme or authority component.

    See https://datatracker.ietf.org/doc/html/rfc3986.html#section-3.3
    """
    # If a URI contains an authority component, then the path component
    # must either be empty or begin with a slash ("/") character."
    if has_authority and path and not path.startswith("/"):
        raise InvalidURL("For absolute URLs, path must be empty or begin with '/'")

    if not has_scheme and not has_authority:
        # If a URI does not contain an authority component, then the path cannot begin
        # with two slash characters ("//").
        if path.startswith("//"):
            raise InvalidURL("Relative URLs cannot have a path starting with '//'")

        # In addition, a URI reference (Section 4.1) may be a relative-path reference,
        # in which case the first path segment cannot contain a colon (":") character.
        if path.startswith(":"):
            raise InvalidURL("Relative URLs cannot have a path starting with ':'")


def normalize_path(path: str) -> str:
    """
    Drop "." and ".." segments from a URL path.

    For example:

        normalize_path("/path/./to/somewhere/..") == "/path/to"
    """
    # Fast return when no '.' characters in the path.
    if "." not in path:
        return path

    components = path.split("/")

    # Fast return when no '.' or '..' components in the path.
    if "." not in components and ".." not in components:
        return path

    # https://datatracker.ietf.org/doc/html/rfc3986#section-5.2.4
    output: list[str] = []
    for component in components:
        if component == ".":
            pass
        elif component == "..":
            if output and output != [""]:
                output.pop()
        else:
            output.append(component)
    return "/".join(output)


def percent(string: str) -> str:
    return "".join([f"%{byte:02X}" for byte in string.encode("utf-8")])


def percent_encoded(string: str, safe: str) -> str:
    """
    Use percent-encoding to quote a string.
    """
    non_escaped_chars = UNRESERVED_CHARACTERS + safe

    # Fast path for strings that don't need escaping.
    if not string.rstrip(non_escaped_chars):
        return string

    return "".join([char if char in non_escaped_chars else percent(char) for char in string])


def quote(string: str, safe: str) -> str:
    """
    Use percent-encoding to quote a string, omitting existing '%xx' escape sequences.

    See: https://www.rfc-editor.org/rfc/rfc3986#section-2.1

    * `string`: The string to be percent-escaped.
    * `safe`: A string containing characters that may be treated as safe, and do not
        need to be escaped. Unreserved characters are always treated as safe.
        See: https://www.rfc-editor.org/rfc/rfc3986#section-2.3
    """
    parts = []
    current_position = 0
    for match in re.finditer(PERCENT_ENCODED_REGEX, string):
        start_position, end_position = match.start(), match.end()
        matched_text = match.group(0)
        # Add any text up to the '%xx' escape sequence.
        if start_position != current_position:
            leading_text = string[current_position:start_position]
            parts.append(percent_encoded(leading_text, safe=safe))

        # Add the '%xx' escape sequence.
        parts.append(matched_text)
        current_position = end_position

    # Add any text after the final '%xx' escape sequence.
    if current_position != len(string):
        trailing_text = string[current_position:]
        parts.append(percent_encoded(trailing_text, safe=safe))

    return "".join(parts)


# --- the URL -----------------------------------------------------------------------------------

#: The components :meth:`URL.copy_with` takes (those of ``httpx.URL`` that are strings).
_STRING_COMPONENTS = frozenset({"scheme", "username", "password", "host", "path", "fragment"})


class URL:
    """A parsed, normalised URL: what preserve uses of ``httpx.URL``, with its semantics (see
    the module docstring). Made from a string, or from a URL with some components replaced."""

    __slots__ = ("_uri_reference",)

    def __init__(self, url: URL | str = "", **kwargs: str | None) -> None:
        for key, value in kwargs.items():
            if key not in _STRING_COMPONENTS:
                raise TypeError(f"{key!r} is an invalid keyword argument for URL()")
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Argument {key!r} must be str but got {type(value).__name__}")
        if isinstance(url, str):
            self._uri_reference = urlparse(url, **kwargs)
        elif isinstance(url, URL):
            self._uri_reference = url._uri_reference.copy_with(**kwargs)
        else:
            raise TypeError(
                f"Invalid type for url.  Expected str or httpx.URL, got {type(url)}: {url!r}")

    @property
    def scheme(self) -> str:
        """The URL scheme, lower-case (``"http"``, ``"https"``)."""
        return self._uri_reference.scheme

    @property
    def raw_scheme(self) -> bytes:
        return self._uri_reference.scheme.encode("ascii")

    @property
    def userinfo(self) -> bytes:
        """The userinfo as raw (still escaped) bytes."""
        return self._uri_reference.userinfo.encode("ascii")

    @property
    def username(self) -> str:
        return unquote(self._uri_reference.userinfo.partition(":")[0])

    @property
    def password(self) -> str:
        return unquote(self._uri_reference.userinfo.partition(":")[2])

    @property
    def host(self) -> str:
        """The host, lower-case, an IDNA host decoded to Unicode."""
        host: str = self._uri_reference.host
        if host.startswith("xn--"):
            import idna  # noqa: PLC0415 - only for an IDNA host

            host = str(idna.decode(host))
        return host

    @property
    def raw_host(self) -> bytes:
        """The host as ASCII bytes: lower-case, IDNA-encoded, an IPv6 address unbracketed."""
        return self._uri_reference.host.encode("ascii")

    @property
    def port(self) -> int | None:
        """The port, or None when absent or the scheme's default."""
        return self._uri_reference.port

    @property
    def netloc(self) -> bytes:
        """``host`` or ``host:port`` as ASCII bytes (the ``Host`` header's value)."""
        return self._uri_reference.netloc.encode("ascii")

    @property
    def path(self) -> str:
        return unquote(self._uri_reference.path or "/")

    @property
    def query(self) -> bytes:
        return (self._uri_reference.query or "").encode("ascii")

    @property
    def raw_path(self) -> bytes:
        """Path and query as ASCII bytes: the request target."""
        path = self._uri_reference.path or "/"
        if self._uri_reference.query is not None:
            path += "?" + self._uri_reference.query
        return path.encode("ascii")

    @property
    def fragment(self) -> str:
        return unquote(self._uri_reference.fragment or "")

    @property
    def is_absolute_url(self) -> bool:
        return bool(self._uri_reference.scheme and self._uri_reference.host)

    @property
    def is_relative_url(self) -> bool:
        return not self.is_absolute_url

    def copy_with(self, **kwargs: str | None) -> URL:
        """This URL with some components replaced (``fragment=None`` drops the fragment)."""
        return URL(self, **kwargs)

    def join(self, url: URL | str) -> URL:
        """``url`` resolved against this URL (``urllib.parse.urljoin``, as httpx does)."""
        return URL(urljoin(str(self), str(URL(url))))

    def __hash__(self) -> int:
        return hash(str(self))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL | str) and str(self) == str(URL(other))

    def __str__(self) -> str:
        return str(self._uri_reference)

    def __repr__(self) -> str:
        scheme, userinfo, host, port, path, query, fragment = self._uri_reference
        if ":" in userinfo:
            userinfo = f"{userinfo.split(':')[0]}:[secure]"  # the password masked
        authority = "".join([
            f"{userinfo}@" if userinfo else "",
            f"[{host}]" if ":" in host else host,
            f":{port}" if port is not None else "",
        ])
        url = "".join([
            f"{self.scheme}:" if scheme else "",
            f"//{authority}" if authority else "",
            path,
            f"?{query}" if query is not None else "",
            f"#{fragment}" if fragment is not None else "",
        ])
        return f"{self.__class__.__name__}({url!r})"


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(UNRESERVED_CHARACTERS)


def _normal_escape(match: re.Match[str]) -> str:
    character = chr(int(match[1], 16))
    return character if character in _UNRESERVED else "%" + match[1].upper()


def url_identity(url: str) -> str:
    """The form every spelling of ``url`` shares (RFC 3986, 6.2.2 and 6.2.3), for lookups:
    parsed as a capture parses it (scheme and host in lower case, an IDNA host
    ASCII-encoded, dot segments removed, the path percent-encoded), then without fragment,
    credentials or the scheme's default port, an empty path as ``/``, and percent-escapes in
    upper case but those of unreserved characters decoded. ``HTTP://Example.org:80/%7ea``
    and ``http://example.org/~a`` share one. Not a SURT: ``www.``, the query's order and a
    trailing slash still count. A URL that cannot be parsed is its own identity."""
    try:
        parsed = URL(url)
        scheme = parsed.scheme
        host = parsed.raw_host.decode("ascii")
        port = parsed.port
        target = parsed.raw_path.decode("ascii")
    except (InvalidURL, TypeError, ValueError, UnicodeError):
        return url
    if not scheme or not host or "%" in host:  # no host a request could be sent to
        return url
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    identity = f"{scheme}://{host}{_ESCAPE.sub(_normal_escape, target)}"
    if "%2e" in target.lower():  # an escaped dot decoded may make a dot segment: once more
        return url_identity(identity)
    return identity


__all__ = ["URL", "InvalidURL", "url_identity", "urlparse"]
