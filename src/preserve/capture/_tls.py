"""What only a capture's TLS connections use: their SSL context class and the record of the
session (imported for https only: an http:// capture sends its request without loading
:mod:`ssl`)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TLSSession:
    """What the TLS handshake settled, read from the connection's SSL object."""

    version: str
    cipher: str
    alpn: str | None
    peer_der: bytes | None  # the leaf certificate as sent, even when not verified


class StrictEOFContext(ssl.SSLContext):
    """An SSLContext whose sockets report a TLS connection that ends without close_notify (a
    'ragged EOF', which a peer or anyone on the path can cause by closing the TCP connection)
    instead of taking it silently for the end of the data:
    :class:`~preserve.capture.transport.RecordingStream` then sets ``ragged_eof`` and reads it
    as the end, so that a body the connection's end delimits is known to be possibly cut
    short."""

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect, False,
                                   server_hostname, session)


__all__ = ["StrictEOFContext", "TLSSession"]
