"""Speaking TLS to a lab host's engine API by hand, to see whom it lets in."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from .hosts import PKI_DIR

ENGINE_PORT = 2376
CONTROLLER = (PKI_DIR / "controller.pem", PKI_DIR / "controller-key.pem")
ADMIN = (PKI_DIR / "admin.pem", PKI_DIR / "admin-key.pem")


def engine_version(address: str, client_cert: tuple[Path, Path] | None) -> bytes:
    """GET /version from an engine's TLS API, with the given client certificate or none.

    Raises ssl.SSLError or ConnectionError when the engine refuses the client: with TLS 1.3
    the server's refusal arrives with the first read.
    """
    context = ssl.create_default_context(cafile=str(PKI_DIR / "ca.pem"))
    context.check_hostname = False
    if client_cert is not None:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    with (
        socket.create_connection((address, ENGINE_PORT), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"GET /version HTTP/1.0\r\n\r\n")
        answer = tls.recv(1024)
        if not answer:
            raise ConnectionResetError("closed without an answer")
        return answer
