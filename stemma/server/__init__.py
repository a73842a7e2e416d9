"""The Stemma server: a FastAPI app whose routes are thin adapters over the store."""
