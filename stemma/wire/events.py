"""The names of webhook events, shared by the CLI, the store and the server (no imports:
the CLI lists them in its help without loading the database layer)."""

from __future__ import annotations

VERSION_CREATED = "artifact.version_created"
ALIAS_MOVED = "artifact.alias_moved"
RUN_FINISHED = "run.finished"
REPORT_SAVED = "report.saved"
PING = "ping"  # a test delivery; not an event one subscribes to

# The events a webhook may subscribe to, in the order the CLI and the UI list them.
EVENTS = (VERSION_CREATED, ALIAS_MOVED, RUN_FINISHED, REPORT_SAVED)
