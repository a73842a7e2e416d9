"""The service layer: every operation on the store, as functions taking a connection.

Both transports end here: the embedded backend calls these in-process, and the
server's routes will be thin adapters over the same functions.
"""
