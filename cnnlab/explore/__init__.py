"""``cnnlab explore``: look inside a net, live, in the browser.

    from cnnlab.explore import load_source, make_server
    server = make_server(load_source(None), port=0)      # the shipped MNIST LeNet-5
    print(server.url); server.serve_forever()

- :mod:`.source` turns a model file (or nothing: the shipped LeNet-5) into an
  :class:`~.source.ExplorerModel`: the one place where another format (``.onnx``) plugs in.
- :mod:`.api` computes every JSON answer from the library (``model.predict``,
  ``cnnlab.viz``); it knows nothing of HTTP, so scripts and tests can call it directly.
- :mod:`.server` serves the API and the static page (``static/``: plain JavaScript and
  canvas, nothing from a CDN) with the standard library's ``ThreadingHTTPServer``.
"""
from .api import BadRequest
from .server import ExplorerServer, make_server
from .source import ExplorerModel, ModelLoadError, load_source

__all__ = ["BadRequest", "ExplorerModel", "ExplorerServer", "ModelLoadError", "load_source",
           "make_server"]
