"""txkestrel: a durable, Kestrel-compatible message queue server on Twisted."""

__version__ = "0.1.0"

# The Kestrel release whose protocols txkestrel speaks, which the `version` command of each
# protocol reports. Clients parse it: libmemcached 1.1 refuses a major version of 0 (so PHP's
# getStats() and memcstat failed on "VERSION 0.1.0"). txkestrel's own version is in stats,
# the admin port and the log.
PROTOCOL_VERSION = "2.4.8"
