"""The explorer's HTTP server: the standard library's ``ThreadingHTTPServer``.

Why not a framework: the explorer serves one user on their own machine, a handful of
small JSON answers and four static files. ``http.server`` needs nothing installed (cnnlab's
core dependencies stay numpy/pillow/matplotlib/tqdm/threadpoolctl), starts instantly and
is a few lines to read; its known weaknesses (no TLS, simple request parsing) matter for
public servers, not for one bound to 127.0.0.1. Every computation holds one lock: layers
keep backward caches, so two requests must not run the model at once.

Safety by default:
- bound to 127.0.0.1 unless ``host`` says otherwise; on a loopback address, requests
  whose Host header names another machine are refused (403: DNS rebinding);
- request bodies are capped (``max_upload`` bytes, 413 before reading them) and must be
  images (400 with a JSON message); a slow client times out;
- the static files are a fixed table read from the package at start: no path sent by a
  client ever reaches the file system;
- responses carry a Content-Security-Policy that allows only this origin (no CDN).
"""
from __future__ import annotations

import ipaddress
import json
import os
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import api

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
#: URL path -> (file in static/, content type). Nothing else is served from disk.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.ico": ("favicon.ico", "image/x-icon"),
}
DEFAULT_MAX_UPLOAD = 2 * 1024 * 1024
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class PortInUseError(OSError):
    """The port is taken: the message names it and says what to do."""


def read_static():
    """{file name: bytes} of every static file (a missing one fails at start)."""
    out = {}
    for name, _ in STATIC_FILES.values():
        path = os.path.join(STATIC_DIR, name)
        try:
            with open(path, "rb") as f:
                out[name] = f.read()
        except OSError as e:
            raise FileNotFoundError(f"the explorer's page is missing from the installed "
                                    f"package ({path}: {e.strerror})") from None
    return out


class ExplorerServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its model (``.em``), static files and limits."""

    daemon_threads = True          # Ctrl-C never waits for a hung connection

    def handle_error(self, request, client_address):
        """A browser that closes a kept-alive connection (reset, broken pipe) is normal
        traffic, not a server error: no traceback for it. Anything else: the default."""
        import sys
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, em, host="127.0.0.1", port=8000, max_upload=DEFAULT_MAX_UPLOAD,
                 verbose=False):
        self.em = em
        self.static = read_static()
        self.max_upload = int(max_upload)
        self.verbose = verbose
        self.lock = threading.Lock()
        self.info = dict(api.model_info(em), max_upload=self.max_upload)
        try:
            super().__init__((host, port), ExplorerHandler)
        except OSError as e:
            if e.errno in (98, 48, 10048):   # EADDRINUSE on Linux / macOS / Windows
                raise PortInUseError(e.errno, f"port {port} on {host} is already in use; "
                                     f"choose another with --port (--port 0 picks a free "
                                     f"one)") from None
            raise
        self.loopback = _is_loopback(host)

    @property
    def url(self):
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(em, host="127.0.0.1", port=8000, max_upload=DEFAULT_MAX_UPLOAD, verbose=False):
    """Bind an :class:`ExplorerServer` for ``em`` (an ExplorerModel); call
    ``serve_forever()`` on it. ``port=0`` picks a free port (see ``.url``)."""
    return ExplorerServer(em, host=host, port=port, max_upload=max_upload, verbose=verbose)


class ExplorerHandler(BaseHTTPRequestHandler):
    server_version = "cnnlab-explore"
    protocol_version = "HTTP/1.1"
    timeout = 30                       # seconds a client may take to send its request

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        if self.server.verbose:
            sys.stderr.write(f"explore: {self.address_string()} {format % args}\n")

    def _send(self, status, body, content_type, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, obj):
        body = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status, message, close=False):
        if close:
            self.close_connection = True
        extra = {"Connection": "close"} if close else None
        body = json.dumps({"error": message, "status": int(status)}).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", extra)

    def _host_ok(self):
        """On loopback, only Host headers naming this machine (DNS-rebinding guard)."""
        if not self.server.loopback:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name in ("127.0.0.1", "localhost", "[::1]", "::1") or name.startswith("127.")

    def _read_body(self):
        """The request body, or None after answering 411/413/400."""
        if self.headers.get("Transfer-Encoding"):
            self._error(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length "
                        "header (chunked uploads are not accepted)", close=True)
            return None
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw)
        except (TypeError, ValueError):
            self._error(HTTPStatus.LENGTH_REQUIRED, f"a Content-Length header is required "
                        f"(got {raw!r})", close=True)
            return None
        if length < 0:
            self._error(HTTPStatus.BAD_REQUEST, f"bad Content-Length {length}", close=True)
            return None
        if length > self.server.max_upload:
            # never read it: answer at once and drop the connection
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"upload of {length:,} bytes is larger than the limit of "
                        f"{self.server.max_upload:,} bytes", close=True)
            return None
        return self.rfile.read(length)

    # ------------------------------------------------------------------ routes
    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method):
        if not self._host_ok():
            self._error(HTTPStatus.FORBIDDEN, "this explorer answers only requests addressed "
                        "to localhost / 127.0.0.1", close=True)
            return
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            if method == "GET" and path in STATIC_FILES:
                name, ctype = STATIC_FILES[path]
                self._send(HTTPStatus.OK, self.server.static[name], ctype)
            elif method == "GET" and path in GET_ROUTES:
                with self.server.lock:
                    result = GET_ROUTES[path](self.server, query)
                self._json(HTTPStatus.OK, result)
            elif method == "POST" and path in POST_ROUTES:
                body = self._read_body()
                if body is None:
                    return
                em = self.server.em
                x = api.decode_image(body, tuple(em.model.input_shape),
                                     invert=query.get("invert") in ("1", "true"))
                with self.server.lock:
                    result = POST_ROUTES[path](em, x, query)
                self._json(HTTPStatus.OK, result)
            # below, a POST body is left unread: close the connection so it is never parsed
            # as the next request
            elif path in STATIC_FILES or path in GET_ROUTES or path in POST_ROUTES:
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}",
                            close=method == "POST")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page or endpoint: {path}",
                            close=method == "POST")
        except api.BadRequest as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a bug: tell the page, log the traceback
            traceback.print_exc(file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR,
                        f"internal error: {type(e).__name__}: {e}")


def _opt_int(query, key, low, high):
    return None if query.get(key) in (None, "") else api.query_int(query, key, low, high)


def _get_model(server, query):
    return server.info


def _get_filters(server, query):
    if "layer" not in query:
        raise api.BadRequest("missing query parameter 'layer'")
    return api.filters(server.em, query["layer"])


def _get_conv_size(server, query):
    args = [api.query_int(query, key, low, 10_000) for key, low in
            (("n", 1), ("k", 1), ("p", 0), ("s", 1), ("d", 1))]
    return api.conv_size(*args)


def _post_forward(em, x, query):
    return api.forward(em, x, encoding=query.get("encoding", "list"))


def _post_unit(em, x, query):
    if "layer" not in query:
        raise api.BadRequest("missing query parameter 'layer'")
    return api.unit(em, x, query["layer"], api.query_int(query, "channel", 0),
                    api.query_int(query, "row", 0, default=0),
                    api.query_int(query, "col", 0, default=0))


def _post_attribution(em, x, query):
    return api.attribution(em, x, query.get("method", "gradcam"),
                           target=_opt_int(query, "target", 0, len(em.classes) - 1),
                           layer=query.get("layer") or None)


GET_ROUTES = {"/api/model": _get_model, "/api/filters": _get_filters,
              "/api/conv-size": _get_conv_size}
POST_ROUTES = {"/api/forward": _post_forward, "/api/unit": _post_unit,
               "/api/attribution": _post_attribution}
