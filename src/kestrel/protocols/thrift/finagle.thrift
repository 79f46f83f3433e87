// The part of Finagle's Thrift protocol upgrade ("TTwitter") that txkestrel reads: a client
// that calls __can__finagle__trace__v3__ and is answered sends, before each later message,
// a RequestHeader struct, and reads a ResponseHeader struct before each reply. Only the
// client id is used (the per-queue whitelists); thriftpy2 skips every other field. The field
// ids are those of Finagle's tracing.thrift (doc/compatibility.md §2.3).

struct ClientId {
  1: string name
}

struct RequestHeader {
  6: optional ClientId client_id
}

// The answer to the upgrade call.
struct UpgradeReply {
}
