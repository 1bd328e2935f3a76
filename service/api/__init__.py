"""What user code touches: objects, their state (ctx), sockets, storage, ids, HTTP values."""
