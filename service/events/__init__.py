"""Event types, the pure fold over them, and the value codec: no I/O here."""
