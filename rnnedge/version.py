"""The version of rnnedge, in one place: the package metadata, bundle manifests and check
reports all read it from here."""

__version__ = "0.1.0"
