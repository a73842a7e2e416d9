"""The server's webhook worker: one thread per server process that sends the deliveries
queued in the database (:class:`stemma.service.webhook_delivery.Deliverer`), started and
stopped with the application. Replicas each run one; claims keep them from sending one
attempt twice."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from stemma.service.webhook_delivery import Deliverer


def start_worker(app: FastAPI) -> threading.Event:
    """Start sending; returns the event that stops the worker."""
    stop = threading.Event()
    deliverer = Deliverer(app.state.store.engine)
    thread = threading.Thread(
        target=deliverer.run, args=(stop,), name="stemma-webhooks", daemon=True
    )
    thread.start()
    app.state.webhook_worker = (stop, thread, deliverer)
    return stop


def stop_worker(app: FastAPI, timeout: float = 5.0) -> None:
    """Stop claiming, and give deliveries in flight a moment to finish."""
    worker = getattr(app.state, "webhook_worker", None)
    if worker is None:
        return
    stop, thread, deliverer = worker
    stop.set()
    thread.join(timeout)
    deliverer.wait(timeout)
    app.state.webhook_worker = None


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The application's lifespan: the worker runs while the server serves."""
    start_worker(app)
    try:
        yield
    finally:
        stop_worker(app)
