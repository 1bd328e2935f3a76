"""The PostgreSQL event store: schema, group commit, replay reads, presence, LISTEN/NOTIFY."""
