"""What a browser capture produced: the data passed from :mod:`.browser` to warc and archive.

:class:`PageCapture` holds every exchange the page made, as recorded by the proxy
(:mod:`.proxy`), with the upstream connection that carried each; the navigation's own hops as a
:class:`~preserve.capture.exchange.FetchResult` (so the manifest's ``redirects``/``connection``
fields mean what they mean for an HTTP capture); the failed requests and console messages; the
screenshot, PDF and rendered DOM spooled to files; and the browser's facts. Every WARC record
id is chosen here, before the file is written, so the manifest sections and the WARC file can
be built independently and agree.

:func:`manifest_sections` and :func:`browser_log_json` turn a capture into the JSON the
manifest (``browser``, ``artifacts``) and the WARC log record hold. This module does no
network or archive I/O (it reads a spooled artifact on request).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preserve.capture.exchange import Exchange, FetchResult, TLSInfo
from preserve.capture.provenance import tls_facts

#: Target URI prefixes of the records a browser capture adds (see warc.write).
SCREENSHOT_URI_PREFIX = "urn:preserve:screenshot:"
PDF_URI_PREFIX = "urn:preserve:pdf:"
DOM_URI_PREFIX = "urn:preserve:dom:"
BROWSER_LOG_URI_PREFIX = "urn:preserve:browser-log:"
INTERCEPTION_CA_URI_PREFIX = "urn:preserve:interception-ca:"

ARTIFACT_KINDS = ("screenshot", "pdf", "dom")
#: ``extraction.source.kind`` values: the rendered DOM, or the final HTTP response.
SOURCE_RENDERED_DOM = "rendered-dom"
SOURCE_RESPONSE = "response"


def new_record_id() -> str:
    """A fresh ``urn:uuid:`` WARC record id."""
    return f"urn:uuid:{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class UpstreamConnection:
    """One connection the proxy opened to a server, and what it learned on it."""

    id: int
    remote_ip: str
    remote_port: int
    local_ip: str | None
    tls: TLSInfo | None


@dataclass(frozen=True, slots=True)
class ProxiedExchange:
    """One request the page made, as the proxy sent it upstream and received the answer."""

    exchange: Exchange
    sequence: int  # order in which the browser's requests reached the proxy
    connection: int  # UpstreamConnection.id
    request_record_id: str
    response_record_id: str
    #: WARC-Truncated reason when the body is incomplete: "length", "time", "disconnect"
    truncated: str | None = None
    resource_type: str | None = None  # as the browser classified it (document, image, …)
    #: WARC-Truncated of the request record: "disconnect" when the server answered and
    #: closed before taking the whole request body (the record holds what was sent)
    request_truncated: str | None = None


@dataclass(frozen=True, slots=True)
class FailedRequest:
    """A request that got no (complete) answer from the server, or that the browser gave up."""

    url: str
    method: str
    source: str  # "proxy": upstream failure seen by the recorder; "browser": the page's view
    error: str
    message: str
    time: str


@dataclass(frozen=True, slots=True)
class Artifact:
    """A screenshot, PDF or rendered DOM, spooled to ``path`` and hashed."""

    kind: str  # one of ARTIFACT_KINDS
    path: Path
    media_type: str
    size: int
    sha256: str
    blake3: str
    record_id: str
    target_uri: str

    def read_bytes(self, limit: int | None = None) -> bytes:
        with self.path.open("rb") as f:
            return f.read() if limit is None else f.read(limit)


@dataclass(frozen=True, slots=True)
class BrowserFacts:
    """Which browser rendered the page, and how."""

    product: str
    version: str
    user_agent: str
    executable: str
    viewport: tuple[int, int]
    flags: tuple[str, ...]
    timings_ms: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PageCapture:
    """Everything one browser capture recorded (files live in the capture's spool dir)."""

    requested_url: str
    page_url: str  # the rendered document's URL when the snapshot was taken
    main: FetchResult  # the navigation: its HTTP hops, first request to final response
    exchanges: tuple[ProxiedExchange, ...]  # all of them, main hops included, in order
    connections: tuple[UpstreamConnection, ...]
    failed: tuple[FailedRequest, ...]
    console: tuple[dict[str, Any], ...]
    artifacts: tuple[Artifact, ...]
    browser: BrowserFacts
    ca_certificate_der: bytes
    ca_fingerprint: str
    max_exchanges: int
    refused_over_cap: int
    notes: tuple[str, ...]
    started: str
    ended: str
    ca_record_id: str = field(default_factory=new_record_id)
    log_record_id: str = field(default_factory=new_record_id)

    @property
    def cap_hit(self) -> bool:
        return self.refused_over_cap > 0

    def artifact(self, kind: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.kind == kind), None)

    @property
    def dom(self) -> Artifact | None:
        return self.artifact("dom")

    def proxied(self, exchange: Exchange) -> ProxiedExchange:
        """The proxied record of one of :attr:`main`'s hops."""
        return next(p for p in self.exchanges if p.exchange is exchange)

    @property
    def final_response_record_id(self) -> str:
        return self.proxied(self.main.final).response_record_id


# --- JSON for the manifest and the WARC log record ---------------------------------------------


def _connection_json(connection: UpstreamConnection) -> dict[str, Any]:
    return {
        "id": connection.id,
        "remote_ip": connection.remote_ip,
        "remote_port": connection.remote_port,
        "local_ip": connection.local_ip,
        "tls": tls_facts(connection.tls),
    }


def _resource_json(proxied: ProxiedExchange) -> dict[str, Any]:
    exchange = proxied.exchange
    return {
        "url": exchange.url,
        "method": exchange.method,
        "status": exchange.status,
        "resource_type": proxied.resource_type,
        "connection": proxied.connection,
        "request_record": proxied.request_record_id,
        "response_record": proxied.response_record_id,
        "started": exchange.started,
        "ended": exchange.ended,
        "transfer_encoding": exchange.transfer_encoding,
        "wire_sha256": exchange.wire_sha256,
        "wire_size": exchange.wire_size,
        "body_sha256": exchange.body_sha256,
        "body_size": exchange.body_size,
        "truncated": proxied.truncated,
    }


def _failed_json(failed: FailedRequest) -> dict[str, Any]:
    return {"url": failed.url, "method": failed.method, "source": failed.source,
            "error": failed.error, "message": failed.message, "time": failed.time}


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "kind": artifact.kind,
        "record": artifact.record_id,
        "target_uri": artifact.target_uri,
        "media_type": artifact.media_type,
        "size": artifact.size,
        "sha256": artifact.sha256,
        "blake3": artifact.blake3,
    }


def browser_json(page: PageCapture) -> dict[str, Any]:
    """The manifest's ``browser`` section (docs/format.md, manifest v2)."""
    facts = page.browser
    return {
        "product": facts.product,
        "version": facts.version,
        "user_agent": facts.user_agent,
        "executable": facts.executable,
        "viewport": {"width": facts.viewport[0], "height": facts.viewport[1]},
        "flags": list(facts.flags),
        "timings_ms": dict(facts.timings_ms),
        "page_url": page.page_url,
        "interception_ca": {"sha256_fingerprint": page.ca_fingerprint,
                            "record": page.ca_record_id},
        "log_record": page.log_record_id,
        "max_exchanges": page.max_exchanges,
        "refused_over_cap": page.refused_over_cap,
        "console_messages": len(page.console),
        "connections": [_connection_json(c) for c in page.connections],
        "resources": [_resource_json(p) for p in page.exchanges],
        "failed": [_failed_json(f) for f in page.failed],
        "notes": list(page.notes),
    }


def manifest_sections(page: PageCapture) -> dict[str, Any]:
    """The manifest fields a browser capture adds: ``browser`` and ``artifacts``."""
    return {"browser": browser_json(page),
            "artifacts": [artifact_json(a) for a in page.artifacts]}


def browser_log_json(page: PageCapture) -> bytes:
    """The ``urn:preserve:browser-log:`` metadata record: console, failures, notes."""
    document = {
        "page_url": page.page_url,
        "console": list(page.console),
        "failed": [_failed_json(f) for f in page.failed],
        "max_exchanges": page.max_exchanges,
        "refused_over_cap": page.refused_over_cap,
        "notes": list(page.notes),
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")


def extraction_source(kind: str, record_id: str) -> dict[str, str]:
    """The manifest's ``extraction.source``: which recorded document the text came from."""
    return {"kind": kind, "record": record_id}


__all__ = [
    "ARTIFACT_KINDS",
    "BROWSER_LOG_URI_PREFIX",
    "DOM_URI_PREFIX",
    "INTERCEPTION_CA_URI_PREFIX",
    "PDF_URI_PREFIX",
    "SCREENSHOT_URI_PREFIX",
    "SOURCE_RENDERED_DOM",
    "SOURCE_RESPONSE",
    "Artifact",
    "BrowserFacts",
    "FailedRequest",
    "PageCapture",
    "ProxiedExchange",
    "UpstreamConnection",
    "artifact_json",
    "browser_json",
    "browser_log_json",
    "extraction_source",
    "manifest_sections",
    "new_record_id",
]
