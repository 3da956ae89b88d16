"""Provenance facts about the capturing side: software versions, host and operator, and the
per-hop network facts copied from :class:`~preserve.capture.exchange.Exchange` objects.

This module only assembles plain JSON-ready dictionaries; it does no network or archive I/O.
"""

from __future__ import annotations

import functools
import getpass
import os
import platform
import socket
import sys
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from typing import Any

from preserve._version import __version__
from preserve.capture.exchange import Exchange, FetchResult, TLSInfo

#: Libraries whose versions shape the bytes preserve writes; recorded in every manifest.
_RECORDED_LIBRARIES = ("httpcore", "h11", "idna", "warcio", "lxml", "blake3", "cryptography",
                       # what the clean text also depends on: the HTML parser, charset
                       # detection, the br and zstd decoders (see audit.deep)
                       "selectolax", "charset-normalizer", "brotlicffi", "backports.zstd")


def utc_now() -> str:
    """The current time as RFC 3339 UTC with microseconds and a ``Z``."""
    return rfc3339(datetime.now(UTC))


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with microseconds (``…T…:….ffffffZ``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@cache
def software() -> dict[str, str]:
    """Versions of preserve, Python, the platform and the libraries that write our bytes."""
    versions = {
        "preserve": __version__,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
    }
    for name in _RECORDED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def host_name() -> str:
    """This machine's host name as the OS reports it."""
    return socket.gethostname()


def default_operator() -> str:
    """Who runs the capture: ``$PRESERVE_OPERATOR``, else the login name."""
    configured = os.environ.get("PRESERVE_OPERATOR")
    if configured:
        return configured
    return _login_name()


@functools.cache
def _login_name() -> str:
    """The login name (read once a process: ``getpass`` may read the passwd database, twice
    a capture otherwise)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a container
        return "unknown"


def user_agent() -> str:
    """The default User-Agent: names preserve, its version and the Python it runs on."""
    return f"preserve/{__version__} (Python {sys.version_info.major}.{sys.version_info.minor})"


def tls_facts(tls: TLSInfo | None) -> dict[str, Any] | None:
    """The TLS facts of one connection as a JSON-ready dict (None for plain HTTP)."""
    if tls is None:
        return None
    cert = tls.certificate
    return {
        "version": tls.version,
        "cipher": tls.cipher,
        "alpn": tls.alpn,
        "verified": tls.verified,
        "certificate": None
        if cert is None
        else {
            "sha256_fingerprint": cert.sha256_fingerprint,
            "subject": cert.subject,
            "issuer": cert.issuer,
            "not_before": cert.not_before,
            "not_after": cert.not_after,
            "serial_number": cert.serial_number,
            "subject_alt_names": list(cert.subject_alt_names),
        },
    }


def hop_facts(exchange: Exchange) -> dict[str, Any]:
    """One redirect-chain entry: where we went, what came back, over which connection."""
    return {
        "url": exchange.url,
        "method": exchange.method,
        "status": exchange.status,
        "location": exchange.location,
        "remote_ip": exchange.remote_ip,
        "remote_port": exchange.remote_port,
        "started": exchange.started,
        "ended": exchange.ended,
        "transfer_encoding": exchange.transfer_encoding,
        "wire_sha256": exchange.wire_sha256,
        "wire_size": exchange.wire_size,
        "body_sha256": exchange.body_sha256,
        "body_size": exchange.body_size,
        "tls": tls_facts(exchange.tls),
    }


def connection_facts(exchange: Exchange) -> dict[str, Any]:
    """The connection the final response came over."""
    return {
        "remote_ip": exchange.remote_ip,
        "remote_port": exchange.remote_port,
        "local_ip": exchange.local_ip,
        "tls": tls_facts(exchange.tls),
    }


def capture_provenance(
    result: FetchResult,
    *,
    capture_id: str,
    operator: str,
    extractor: dict[str, Any],
) -> dict[str, Any]:
    """The provenance document written into the WARC ``metadata`` record and the manifest."""
    final = result.final
    return {
        "capture_id": capture_id,
        "requested_url": result.requested_url,
        "final_url": result.final_url,
        "started": result.started,
        "ended": result.ended,
        "http": {
            "status": final.status,
            "reason": final.reason,
            "content_type": final.content_type,
        },
        "redirects": [hop_facts(hop) for hop in result.exchanges],
        "connection": connection_facts(final),
        "software": software(),
        "host": host_name(),
        "operator": operator,
        "extractor": extractor,
    }
