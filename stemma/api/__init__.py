"""The public read API (``stemma.Api``)."""
