"""Shapes shared by the SDK, the service layer and (later) the server.

Nothing here imports SQLAlchemy, pydantic or numpy: the SDK imports this package on
its hot path, so it must stay light.
"""
