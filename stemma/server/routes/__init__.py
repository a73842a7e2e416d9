"""API routes, one module per resource; each handler calls one store operation."""
