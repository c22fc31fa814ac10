"""The HTTPS server: mutual TLS, the API's answers, and streamed responses.

The standard library's threaded HTTP server, one thread per connection. Each connection's
TLS handshake happens on its own thread (a slow client never holds up `accept`) and demands
a client certificate signed by the given CA: a client without one gets no HTTP answer at all.
Answers are JSON with a Content-Length; watches and logs are streamed with chunked transfer
encoding, one chunk per event or log piece, flushed at once. GET is the only method served:
every other one, and the pod subresources that act (exec, attach, portforward...), get 405
with a Status saying where changes go.

The server reads only the store's immutable state (`store.State`) and waits only on the
store's changes; it never calls into the controller.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import select
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

from reconciler import errors
from reconciler.api import discovery, logs, meta, requests, selectors, store, streams, tables
from reconciler.cluster import config

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 300.0  # a kept-alive connection with no request for this long is closed
MAX_BODY = 1 << 20
WATCH_TIMEOUT = 1800.0  # the API server's default --min-request-timeout
READ_ONLY = ("podyard is read-only: it applies the manifests committed to its Git repository; "
             "push a change there instead")


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:6443` for IPv6) as an address; ValueError when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def tls_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by `client_ca`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise errors.ClusterError(
            f"--api-cert {cert} / --api-key {key}: cannot load the certificate and key: {e}"
        ) from e
    try:
        context.load_verify_locations(cafile=client_ca)
    except (OSError, ssl.SSLError) as e:
        raise errors.ClusterError(f"--api-client-ca {client_ca}: cannot load: {e}") from e
    return context


class Server:
    """The API on one address; `start` serves on a thread, `close` stops everything."""

    def __init__(self, listen: str, context: ssl.SSLContext, data: store.Store,
                 cluster: config.Cluster) -> None:
        try:
            host, port = parse_listen(listen)
        except ValueError as e:
            raise errors.ClusterError(f"--api-listen: {e}") from e
        self.store = data
        self.cluster = cluster
        self.stop = threading.Event()
        try:
            self.http = _HTTPServer((host, port), context, self)
        except OSError as e:
            raise errors.ClusterError(f"--api-listen {listen}: cannot listen: {e}") from e
        self.address = f"{listen.rpartition(':')[0] or host}:{self.http.server_address[1]}"
        self._thread = threading.Thread(target=self.http.serve_forever, daemon=True,
                                        name="api-server")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self.store.close()
        if self._thread.is_alive():
            self.http.shutdown()
        self.http.server_close()


class _HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, api: Server) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.context = context
        self.api = api
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake, on this connection's own thread; no certificate, no answer."""
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            _Handler(conn, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection's failure is that connection's business: nothing is printed."""


class _Sink:
    """A chunked response: one chunk per write, flushed; `gone` when the client closed."""

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler

    def write(self, data: bytes) -> None:
        if data:
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.handler.wfile.flush()

    def gone(self) -> bool:
        """A client sends nothing while it reads a streamed answer: anything readable (its
        close, most likely) means it is done with it."""
        try:
            readable, _, _ = select.select([self.handler.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self.handler.wfile.write(b"0\r\n\r\n")
            self.handler.wfile.flush()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "podyard"
    timeout = IDLE_TIMEOUT
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the controller's output is for what the controller does."""

    def do_GET(self) -> None:
        self._answer()

    def _refuse_write(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
        request = requests.parse(self.path)
        details = {"name": request.name, "kind": request.resource} if request.resource else None
        self._json(405, meta.status(405, "MethodNotAllowed", READ_ONLY, details))

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse_write

    # -- answers ---------------------------------------------------------------------------

    def _answer(self) -> None:
        request = requests.parse(self.path)
        state = self.server.api.store.state
        try:
            match request.kind:
                case "discovery":
                    self._json(200, _discovery(request.document, self.server.api.address))
                case "write":
                    self._refuse_write()
                case "list":
                    self._list(request, state)
                case "get":
                    self._get(request, state)
                case "log":
                    self._log(request, state)
                case _:
                    self._json(404, meta.status(404, "NotFound",
                                                "the server could not find the requested resource"))
        except selectors.Invalid as e:
            self._json(400, meta.status(400, "BadRequest", str(e)))
        except logs.Refused as e:
            self._json(int(e.status["code"]), e.status)

    def _get(self, request: requests.Request, state: store.State) -> None:
        key = (request.namespace or "", request.name)
        obj = state.objects.get(request.resource, {}).get(key)
        if obj is None:
            message = f'{request.resource} "{request.name}" not found'
            self._json(404, meta.status(404, "NotFound", message,
                                        {"name": request.name, "kind": request.resource}))
            return
        form, version = requests.wanted_form(self.headers.get("Accept", ""))
        if form == "Table":
            doc = tables.table(request.resource, [obj], time.time(),
                               obj["metadata"].get("resourceVersion", ""),
                               request.query.get("includeObject", "Metadata"))
            self._json(200, {**doc, "apiVersion": f"meta.k8s.io/{version}"})
        elif form.startswith("PartialObjectMetadata"):
            self._json(200, _partial(obj, version))
        else:
            self._json(200, obj)

    def _list(self, request: requests.Request, state: store.State) -> None:
        opts = _watch_options(request, self.headers.get("Accept", ""))
        if request.watch:
            self._watch(request, opts)
            return
        items = [o for o in state.items(request.resource) if opts.wanted(o)]
        rv = str(state.rv)
        if opts.table:
            doc = tables.table(request.resource, items, time.time(), rv, opts.include)
            self._json(200, {**doc, "apiVersion": f"meta.k8s.io/{opts.table}"})
            return
        form, version = requests.wanted_form(self.headers.get("Accept", ""))
        if form.startswith("PartialObjectMetadata"):
            self._json(200, {"kind": "PartialObjectMetadataList",
                             "apiVersion": f"meta.k8s.io/{version}",
                             "metadata": {"resourceVersion": rv},
                             "items": [_partial(o, version) for o in items]})
            return
        kind = discovery.BY_NAME[request.resource].kind
        self._json(200, {"kind": f"{kind}List", "apiVersion": "v1",
                         "metadata": {"resourceVersion": rv},
                         "items": [_item(o) for o in items]})

    def _watch(self, request: requests.Request, opts: streams.WatchOptions) -> None:
        data = self.server.api.store
        asked = request.query.get("resourceVersion", "")
        initial: list[Mapping[str, Any]] = []
        if asked in ("", "0") or opts.initial_events_end:
            state = data.state
            since = state.rv
            initial = [o for o in state.items(request.resource) if opts.wanted(o)]
        else:
            try:
                since = int(asked)
                data.since(since)
            except ValueError:
                self._json(400, meta.status(400, "BadRequest",
                                            f"invalid resource version: {asked!r}"))
                return
            except store.Expired as e:
                self._json(410, meta.status(410, "Expired", str(e)))
                return
        sink = self._stream("application/json")
        streams.run_watch(data, sink, opts, since, initial, self.server.api.stop)
        sink.end()

    def _log(self, request: requests.Request, state: store.State) -> None:
        pod = state.objects.get("pods", {}).get((request.namespace or "", request.name))
        target = logs.target(pod, request.name, request.query, time.time())
        try:
            source = logs.open_stream(self.server.api.cluster, target)
        except errors.NotFound as e:
            raise logs.Refused(meta.status(404, "NotFound", str(e))) from e
        except errors.PodyardError as e:
            raise logs.Refused(meta.status(500, "InternalError", str(e))) from e
        sink = self._stream("text/plain")
        with contextlib.suppress(errors.PodyardError):  # the engine went away: it ends there
            streams.run_log(source, sink, target.limit, self.server.api.stop)
        sink.end()

    # -- plumbing ----------------------------------------------------------------------------

    def _json(self, code: int, doc: Mapping[str, Any]) -> None:
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, content_type: str) -> _Sink:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True  # whatever the client sends next, it sends anew
        return _Sink(self)


def _watch_options(request: requests.Request, accept: str) -> streams.WatchOptions:
    query = request.query
    matchers = []
    if query.get("labelSelector"):
        matchers.append(selectors.label_matcher(query["labelSelector"]))
    if query.get("fieldSelector"):
        matchers.append(selectors.field_matcher(request.resource, query["fieldSelector"]))
    form, version = requests.wanted_form(accept)
    try:
        timeout = float(query.get("timeoutSeconds") or WATCH_TIMEOUT)
    except ValueError as e:
        raise selectors.Invalid(f"timeoutSeconds: {query['timeoutSeconds']!r}") from e
    return streams.WatchOptions(
        resource=request.resource, kind=discovery.BY_NAME[request.resource].kind,
        namespace=request.namespace, matches=lambda obj: all(m(obj) for m in matchers),
        table=version if form == "Table" else "", include=query.get("includeObject", "Metadata"),
        timeout=max(0.0, timeout), bookmarks=request.flag("allowWatchBookmarks"),
        initial_events_end=request.flag("sendInitialEvents"),
    )


def _discovery(document: str, address: str) -> dict[str, Any]:
    match document:
        case "version":
            return discovery.version()
        case "api":
            return discovery.api_versions(address)
        case "apis":
            return discovery.api_groups()
        case _:
            return discovery.api_resources()


def _item(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object as a list's item: the API server writes no kind or apiVersion there."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _partial(obj: Mapping[str, Any], version: str) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
            "metadata": obj.get("metadata") or {}}
