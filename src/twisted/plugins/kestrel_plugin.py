from twisted.application.service import ServiceMaker

kestrel = ServiceMaker("txkestrel", "kestrel.tap", "A durable, Kestrel-compatible message queue server.", "kestrel")
