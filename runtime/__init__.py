"""rnnedge.runtime: load a bundle and stream it. Needs numpy only; onnxruntime and LiteRT are
imported lazily by their backends. Never imports torch."""

from rnnedge.runtime.backends import available_backends
from rnnedge.runtime.bundle import Bundle, read_bundle
from rnnedge.runtime.model import Model, Stream, load

__all__ = ["Bundle", "Model", "Stream", "available_backends", "load", "read_bundle"]
