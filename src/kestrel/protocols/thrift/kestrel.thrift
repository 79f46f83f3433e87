// Kestrel's Thrift interface (Kestrel 2.4), served on port 2229 with the framed transport
// and the strict binary protocol. Loaded at run time by kestrel/protocols/thrift.py.

namespace java net.lag.kestrel.thrift

struct Item {
  // the item's bytes, exactly as they were put
  1: binary data
  // the transaction handle that confirm and abort take; 0 when the read opened nothing
  2: i64 id
}

struct QueueInfo {
  // absent when the queue is empty
  1: optional binary head_item
  2: i64 items
  3: i64 bytes
  4: i64 journal_bytes
  5: i64 age
  6: i32 waiters
  7: i32 open_transactions
}

enum Status {
  NOT_CONFIGURED = 0,
  QUIESCENT = 1,
  READ_ONLY = 2,
  UP = 3,
}

service Kestrel {
  // Add items in order, stopping at the first the queue refuses; returns how many were added.
  i32 put(1: string queue_name, 2: list<binary> items, 3: i32 expiration_msec = 0)

  // Take up to max_items, waiting until timeout_msec for them; with auto_abort_msec the
  // items are opened under handles and go back to the queue unless confirmed in time.
  list<Item> get(1: string queue_name, 2: i32 max_items, 3: i32 timeout_msec = 0, 4: i32 auto_abort_msec = 0)

  // Confirm or abort opened items by handle; each returns how many were open.
  i32 confirm(1: string queue_name, 2: set<i64> ids)
  i32 abort(1: string queue_name, 2: set<i64> ids)

  QueueInfo peek(1: string queue_name)

  void flush_queue(1: string queue_name)
  void flush_all_queues()
  void delete_queue(1: string queue_name)

  Status current_status()
  void set_status(1: Status status)
  string get_version()
}
