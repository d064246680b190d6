"""Adapters: the outside world (IMAP, NetSuite, SQLite) behind the core's ports."""
