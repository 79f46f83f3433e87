"""txkestrel: a durable, Kestrel-compatible message queue server on Twisted."""

__version__ = "2.4.8"
