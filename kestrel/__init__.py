"""txkestrel: a durable, Kestrel-compatible message queue server on Twisted."""

__version__ = "0.1.0"
