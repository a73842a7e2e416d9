"""The server's webhook worker: one thread per application that sends the deliveries
queued in the database (:class:`stemma.service.webhook_delivery.Deliverer`), started and
stopped with the application. Replicas each run one; claims keep them from sending one
attempt twice.

An application's lifespan may be entered more than once at a time (several test clients
over one app, nested): they share the one worker, and the last to leave stops it. Each
lifespan starting its own worker under one ``app.state`` slot would leave all but the
last running for good, sending with the settings they started with."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from stemma.service.webhook_delivery import Deliverer

log = logging.getLogger("stemma.webhooks")

_guard = threading.Lock()  # app.state.webhook_worker and its users


@dataclasses.dataclass(slots=True)
class Worker:
    """An application's running worker, and how many lifespans hold it."""

    stop: threading.Event
    thread: threading.Thread
    deliverer: Deliverer
    users: int = 1


def start_worker(app: FastAPI) -> threading.Event:
    """Start sending, or join the worker already running for ``app``; returns the event
    that stops the worker."""
    with _guard:
        worker: Worker | None = getattr(app.state, "webhook_worker", None)
        if worker is not None:
            worker.users += 1
            return worker.stop
        stop = threading.Event()
        deliverer = Deliverer(app.state.store.engine)
        thread = threading.Thread(
            target=deliverer.run, args=(stop,), name="stemma-webhooks", daemon=True
        )
        thread.start()
        app.state.webhook_worker = Worker(stop, thread, deliverer)
        return stop


def stop_worker(app: FastAPI, timeout: float = 5.0) -> None:
    """Leave the worker; the last to leave stops it claiming, and gives the deliveries
    in flight a moment to finish."""
    with _guard:
        worker: Worker | None = getattr(app.state, "webhook_worker", None)
        if worker is None:
            return
        worker.users -= 1
        if worker.users > 0:
            return
        app.state.webhook_worker = None
    worker.stop.set()
    worker.thread.join(timeout)
    worker.deliverer.wait(timeout)
    if worker.thread.is_alive():
        log.warning("webhook worker: still busy %.0f s after being stopped", timeout)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The application's lifespan: the worker runs while the server serves."""
    start_worker(app)
    try:
        yield
    finally:
        stop_worker(app)
