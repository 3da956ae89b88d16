"""preserve.capture.urls parses and normalises URLs exactly as httpx does.

A capture parses its URL without importing httpx (start-up time), with a copy of httpx's
parser. Everything preserve reads of a URL (its text, host, port, request target, ``Host``
header, a redirect's resolved Location, the errors) is compared here with what ``httpx.URL``
gives, for hostile and ordinary URLs and for generated ones. The copy is of httpx 0.29.0: a
later httpx that normalises differently makes this test fail, and the difference is then a
decision to make (what an archive records of a URL must not change silently).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preserve.capture import fetch, urls
from preserve.errors import InvalidURLError, UnsupportedSchemeError

CORPUS = [
    "http://example.org",
    "http://example.org/",
    "HTTP://EXAMPLE.ORG:80/A/B?Q=1#F",
    "https://example.org:443/",
    "https://example.org:8443/x",
    "http://example.org:0/",
    "http://example.org:65536/",
    "http://example.org:99999999999999999999/",
    "http://example.org:-1/",
    "http://example.org:+80/",
    "http://example.org: 80/",
    "http://example.org:8o/",
    "http://example.org:/",
    "http://user:pass@example.org/",
    "http://user@example.org/",
    "http://us%20er:p%40ss@example.org/",
    "http://a:b:c@example.org/",
    "http://a@b@example.org/",
    "http://@example.org/",
    "http://example.org/a/./b/../c",
    "http://example.org/../../x",
    "http://example.org/a/b/..",
    "http://example.org/%2e%2e/x",
    "http://example.org/pa th?q=a b#fr ag",
    "http://example.org/\u00e9?\u00e9#\u00e9",
    "http://example.org/%zz%41%4a",
    "http://example.org/?",
    "http://example.org/#",
    "http://example.org/?#",
    "http://example.org/a?b?c#d#e",
    "http://example.org/{}|\\^`",
    "http://example.org/\"<>",
    "http://m\u00fcller.de/",
    "http://M\u00dcLLER.de/",
    "http://xn--mller-kva.de/",
    "http://\u4e2d\u56fd.icom.museum/",
    "http://\u2603.net/",
    "http://\u00df.de/",
    "http://a\u200db.example/",
    "http://\uff41.example/",
    "http://-bad-.example/",
    "http://bad_host.example/",
    "http://exa mple.org/",
    "http://exa%20mple.org/",
    "http://example.org./",
    "http://.example.org/",
    "http://a..b/",
    "http://" + "a" * 64 + ".example/",
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/",
    "http://256.0.0.1/",
    "http://1.2.3/",
    "http://0x7f.0.0.1/",
    "http://[::1]/",
    "http://[::1]:8080/",
    "http://[::ffff:192.168.0.1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fe80::1%eth0]/",
    "http://[::1/",
    "http://::1/",
    "http://[not-ipv6]/",
    "http://[1:2:3:4:5:6:7:8:9]/",
    "ftp://example.org/",
    "ws://example.org:80/",
    "javascript:alert(1)",
    "mailto:someone@example.org",
    "file:///etc/passwd",
    "data:text/html,<p>x",
    "example.org",
    "example.org/path",
    "//example.org/path",
    "/just/a/path",
    ":nothing",
    "",
    " ",
    "http:",
    "http:/",
    "http://",
    "http:///path",
    "http:example.org",
    "https:/example.org",
    "http://exa\tmple.org/",
    "http://example.org/\r\nInjected: 1",
    "http://example.org/\x00",
    "http://example.org/\x7f",
    "http://example.org/\x1b[31m",
    "  http://example.org/  ",
    "http://example.org/" + "a" * 70000,
    "h\u00e9tp://example.org/",
    "1http://example.org/",
    "http+unix://example.org/",
    "http://example.org/\ud800",
    "http://\ud800.example/",
    "http://example.org:8080:9090/",
    "http://example.org/%",
    "http://example.org/%4",
    "http://user:@example.org/",
    "http://:pass@example.org/",
]

#: Locations a redirect may name, resolved against the URL that gave them.
LOCATIONS = [
    "/next", "next", "../up", "./same", "?q=2", "#frag", "", "//other.example/x",
    "https://other.example:8443/y?z#w", "http://[::1]:81/", "/a b", "\u00e9", "//m\u00fcller.de/",
    "http://", "http://[::1/", "http://example.org:99999/", "javascript:alert(1)",
    "/" + "x" * 70000,
    "http://exa\tmple.org/", "HTTP://EXAMPLE.ORG/%7e", "..", "/..", "/a/./b/../c",
]


def outcome(make: Any) -> tuple[str, Any]:
    """What ``make()`` returns, or its error's type name and message."""
    try:
        return "ok", make()
    except Exception as exc:
        return type(exc).__name__, str(exc)


def facts(url: Any) -> tuple[Any, ...]:
    return (str(url), url.scheme, url.raw_host, url.port, url.netloc, url.raw_path, url.userinfo,
            url.username, url.password, url.host, url.path, url.query, url.fragment,
            url.is_absolute_url, repr(url).split("(", 1)[1])


def same(text: str) -> None:
    ours = outcome(lambda: facts(urls.URL(text)))
    theirs = outcome(lambda: facts(httpx.URL(text)))
    assert ours == theirs, text
    if ours[0] != "ok":
        return
    stripped = outcome(lambda: facts(urls.URL(text).copy_with(fragment=None, username=None,
                                                              password=None)))
    expected = outcome(lambda: facts(httpx.URL(text).copy_with(fragment=None, username=None,
                                                               password=None)))
    assert stripped == expected, text
    for location in LOCATIONS:
        assert outcome(lambda at=location: str(urls.URL(text).join(at))) == \
            outcome(lambda at=location: str(httpx.URL(text).join(at))), (text, location)


def test_the_character_sets_are_httpxs() -> None:
    from httpx import _urlparse  # noqa: PLC0415

    for name in ("UNRESERVED_CHARACTERS", "SUB_DELIMS", "FRAG_SAFE", "QUERY_SAFE", "PATH_SAFE",
                 "USERNAME_SAFE", "PASSWORD_SAFE", "USERINFO_SAFE", "MAX_URL_LENGTH"):
        assert getattr(urls, name) == getattr(_urlparse, name), name


def test_non_printable_ascii_is_found_as_httpx_finds_it() -> None:
    """The regular expression finds what httpx's character-by-character test
    (``char.isascii() and not char.isprintable()``) finds, first one first."""
    for code in range(0x110000):
        char = chr(code)
        expected = char if char.isascii() and not char.isprintable() else None
        assert urls._non_printable_ascii(char) == expected, hex(code)
    assert urls._non_printable_ascii("http://a/\u00e9\u2028x\ty\x7f") == "\t"
    assert urls._non_printable_ascii("http://a/\u00a0\u2028") is None


@pytest.mark.parametrize("text", CORPUS)
def test_a_url_is_parsed_as_httpx_parses_it(text: str) -> None:
    same(text)


@pytest.mark.parametrize("text", CORPUS)
def test_parse_url_accepts_and_refuses_as_before(text: str) -> None:
    """``fetch.parse_url`` as it was written over ``httpx.URL``: same result, same error."""
    def before() -> tuple[Any, ...]:  # fetch.parse_url as it was (over httpx.URL)
        try:
            parsed = httpx.URL(text)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise InvalidURLError(f"invalid URL {fetch._shown(text)}: {exc}") from exc
        scheme = parsed.scheme.lower()
        if not scheme:
            raise InvalidURLError(
                f"URL has no scheme (expected http:// or https://): {fetch._shown(text)}")
        if scheme not in ("http", "https"):
            raise UnsupportedSchemeError(
                f"unsupported URL scheme {fetch._shown(scheme)} in {fetch._shown(text)}")
        host = parsed.raw_host.decode("ascii", "replace")
        if not host:
            raise InvalidURLError(f"URL has no host: {fetch._shown(text)}")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not fetch._HOSTNAME.match(host):
                raise InvalidURLError(f"invalid host name {fetch._shown(host)} in "
                                      f"{fetch._shown(text)}") from None
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise InvalidURLError(f"invalid port {parsed.port} in {fetch._shown(text)}")
        return facts(parsed.copy_with(fragment=None, username=None, password=None))

    assert outcome(lambda: facts(fetch.parse_url(text))) == outcome(before), text


def test_a_url_that_is_not_text_is_refused_as_httpx_refuses_it() -> None:
    for value in (None, 1, b"http://example.org/"):
        assert outcome(lambda v=value: urls.URL(v)) == outcome(lambda v=value: httpx.URL(v))


URL_CHARACTERS = st.sampled_from(
    [*"abcAZ09-._~:/?#[]@!$&'()*+,;=% \"<>\\^`{|}\t\x00\x7f\u00e9\u00df\u4e2d\u200d",
     "%41", "%zz", "%2e", "%2E%2E", "..", "./", "xn--", "[::1]", ":80", ":443", "@", "//"])


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "//", "http:"]),
       host=st.sampled_from(["example.org", "EXAMPLE.org", "127.0.0.1", "[::1]", "m\u00fcller.de",
                             "", "a_b", "xn--mller-kva.de", "1.2.3.4.5"]),
       rest=st.lists(URL_CHARACTERS, max_size=20).map("".join))
def test_generated_urls_are_parsed_as_httpx_parses_them(scheme: str, host: str,
                                                        rest: str) -> None:
    same(scheme + host + rest)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_parsed_as_httpx_parses_it(text: str) -> None:
    same(text)


@pytest.mark.parametrize(("spellings", "identity"), [
    (["https://example.org/a", "HTTPS://Example.ORG:443/a", "https://example.org/a#frag",
      "https://user:pw@example.org/a", "https://example.org/x/../a", "https://example.org/./a",
      "https://example.org/%61", "https://example.org/b/%2E%2e/a"], "https://example.org/a"),
    (["http://example.org", "http://example.org/", "HTTP://example.org:80",
      "http://example.org:80/#top"], "http://example.org/"),
    (["http://example.org/%7euser/a%2fb", "http://example.org/~user/a%2Fb"],
     "http://example.org/~user/a%2Fb"),
    (["http://bücher.de/é", "http://xn--bcher-kva.de/%c3%a9", "http://BÜCHER.de/%C3%A9"],
     "http://xn--bcher-kva.de/%C3%A9"),
    (["http://[::1]:80/a", "http://[::1]/a"], "http://[::1]/a"),
    (["http://example.org/?q=%41%2b"], "http://example.org/?q=A%2B"),
])
def test_every_spelling_of_a_url_has_one_identity(spellings: list[str], identity: str) -> None:
    for spelling in spellings:
        assert urls.url_identity(spelling) == identity, spelling


@pytest.mark.parametrize(("one", "other"), [
    ("http://example.org/a", "https://example.org/a"),  # another scheme
    ("http://example.org/a", "http://www.example.org/a"),
    ("http://example.org:8080/a", "http://example.org/a"),  # not the default port
    ("http://example.org/a", "http://example.org/a/"),  # a trailing slash after a path
    ("http://example.org/a?x=1&y=2", "http://example.org/a?y=2&x=1"),
    ("http://example.org/a%2Fb", "http://example.org/a/b"),  # an escaped reserved character
    ("http://example.org/A", "http://example.org/a"),  # the path's case
])
def test_different_urls_keep_different_identities(one: str, other: str) -> None:
    assert urls.url_identity(one) != urls.url_identity(other)


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "", "//", "http:"]),
       host=st.sampled_from(["example.org", "EXAMPLE.org", "127.0.0.1", "[::1]", "m\u00fcller.de",
                             "", "a_b", "xn--mller-kva.de", "1.2.3.4.5"]),
       rest=st.lists(URL_CHARACTERS, max_size=20).map("".join))
def test_an_identity_is_its_own_identity_and_never_raises(scheme: str, host: str,
                                                         rest: str) -> None:
    """Hostile text gives an identity (itself when it cannot be parsed), and an identity
    names the same resource again: a URL recorded in its identity's form is found by it."""
    identity = urls.url_identity(scheme + host + rest)
    assert urls.url_identity(identity) == identity
