"""``cnnlab explore [MODEL]``: look inside a net, live, in the browser.

Starts a local web server and opens the page: draw a digit (or upload an image), see
every layer's output, click a unit for its arithmetic (window, kernel, products, sum,
bias), Grad-CAM and saliency for any class, the filters, and a conv-arithmetic panel.
MODEL: a cnnlab .npz (Model.save / cnnlab train); none: the shipped MNIST LeNet-5.
Bound to 127.0.0.1 unless --host says otherwise. Ctrl-C stops it.
"""
from __future__ import annotations

import sys
import threading
import webbrowser

from .common import CLIError, positive_int

ORDER = 60


def register(sub):
    p = sub.add_parser("explore", help="explore a net live in the browser (local web server)",
                       description=__doc__.replace("``", ""))
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="a cnnlab .npz model file (default: the shipped MNIST LeNet-5)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000,
                   help="port (default 8000; 0 picks a free one)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--max-upload", type=positive_int, default=2 * 1024 * 1024, metavar="BYTES",
                   help="largest accepted upload in bytes (default 2 MiB; larger: 413)")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.set_defaults(func=run)


def run(args):
    from ..explore import ModelLoadError, load_source, make_server
    from ..explore.server import PortInUseError

    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be in 0..65535, got {args.port}")
    try:
        em = load_source(args.model)
    except ModelLoadError as e:
        raise CLIError(str(e)) from None
    try:
        server = make_server(em, host=args.host, port=args.port, max_upload=args.max_upload,
                             verbose=args.verbose)
    except PortInUseError as e:
        raise CLIError(e.strerror) from None
    except OSError as e:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    url = server.url
    print(f"cnnlab explore: {em.name} ({em.source}) at {url}  (Ctrl-C stops)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"cnnlab explore: warning: listening on {args.host}: other machines can reach "
              f"this server", file=sys.stderr, flush=True)
    if not args.no_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\ncnnlab explore: stopped", flush=True)
    finally:
        server.server_close()
    return 0
