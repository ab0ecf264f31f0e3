"""The robot's local SQLite store: what it needs offline, what it produced, and the sync outbox."""
