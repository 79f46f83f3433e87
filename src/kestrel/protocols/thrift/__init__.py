"""
Kestrel's Thrift protocol, port 2229: `protocol` (framing and calls in order), `scan` (each
frame checked before it is decoded), `codec` (kestrel.thrift, Kestrel's IDL, loaded and used to
encode and decode), `handler` (the eleven methods), `handles` (the server-wide handles of open
reads, with their abort timers).
"""
