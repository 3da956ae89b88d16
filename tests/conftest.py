"""Shared pytest fixtures: a test CA and real HTTP/HTTPS servers on 127.0.0.1.

* ``test_ca`` — a trustme CA (session-wide); ``ca_bundle`` — its PEM file, to pass as
  ``FetchOptions(ca_bundle=...)`` so the HTTPS fixtures are trusted and nothing else is.
* ``http_server`` / ``https_server`` — a started :class:`tests.servers.TestServer`; fill
  ``server.routes`` in the test. ``https_server.certificate_der`` is the leaf it presents
  (issued by ``test_ca`` for 127.0.0.1 and localhost).
* ``untrusted_https_server`` — HTTPS with a certificate from a different CA that
  ``ca_bundle`` does not contain (for TLS failure tests).
* ``spool_dir`` — an empty directory for fetch's spool files.

Test modules import the server helpers as ``from servers import respond, redirect, ...``
(pytest puts ``tests/`` on ``sys.path``; there is no ``tests/__init__.py``).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from servers import TestServer


@pytest.fixture(autouse=True, scope="session")
def session_operator_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The operator config dir of what runs before a test's own (module and session fixtures,
    the processes they start): never ~/.config either."""
    home = tmp_path_factory.mktemp("session-config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRESERVE_CONFIG_HOME", str(home))
        yield home


@pytest.fixture(autouse=True)
def operator_config(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own operator config dir (keys, known heads), never ~/.config."""
    home = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("PRESERVE_CONFIG_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_bundle(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "test-ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


def _https_server(ca: trustme.CA) -> TestServer:
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])  # as real servers do, so ALPN is negotiated
    pem = leaf.cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    return TestServer(ssl_context=context, certificate_der=der)


@pytest.fixture
def http_server() -> Iterator[TestServer]:
    with TestServer() as server:
        yield server


@pytest.fixture
def https_server(test_ca: trustme.CA) -> Iterator[TestServer]:
    with _https_server(test_ca) as server:
        yield server


@pytest.fixture
def untrusted_https_server() -> Iterator[TestServer]:
    with _https_server(trustme.CA()) as server:
        yield server


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path
