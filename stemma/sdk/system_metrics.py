"""Background sampling of CPU, memory, disk, network and (when present) GPU usage.

Samples go into the run's ``system`` stream as ``system/*`` keys, with their own
sample counter as the step so they never disturb the user's ``_step``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class SystemSampler(threading.Thread):
    """Calls ``emit(values)`` every ``interval`` seconds until stopped."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], interval: float) -> None:
        super().__init__(name="stemma-system-metrics", daemon=True)
        self._emit = emit
        self._interval = interval
        self._stop_event = threading.Event()
        self._gpu: Any = None

    def stop(self) -> None:
        self._stop_event.set()

    def _init_gpu(self) -> None:
        try:
            import pynvml  # from nvidia-ml-py, optional

            pynvml.nvmlInit()
            self._gpu = pynvml
        except Exception:
            self._gpu = None

    def _gpu_sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        nv = self._gpu
        if nv is None:
            return out
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                util = nv.nvmlDeviceGetUtilizationRates(h)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                out[f"system/gpu.{i}.gpu"] = float(util.gpu)
                out[f"system/gpu.{i}.memory_allocated"] = 100.0 * mem.used / max(mem.total, 1)
                out[f"system/gpu.{i}.temp"] = float(
                    nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
                )
        except Exception as exc:  # a driver hiccup must not stop CPU sampling
            log.debug("GPU sampling failed: %s", exc)
        return out

    def run(self) -> None:
        import psutil

        proc = psutil.Process()
        proc.cpu_percent(None)
        psutil.cpu_percent(None)
        self._init_gpu()
        net0 = psutil.net_io_counters()
        while not self._stop_event.wait(self._interval):
            try:
                vm = psutil.virtual_memory()
                net = psutil.net_io_counters()
                sample: dict[str, Any] = {
                    "system/cpu": psutil.cpu_percent(None),
                    "system/memory_percent": vm.percent,
                    "system/proc.memory.rssMB": proc.memory_info().rss / 2**20,
                    "system/proc.cpu.threads": proc.num_threads(),
                    "system/proc.cpu.percent": proc.cpu_percent(None),
                    "system/network.sent": float(net.bytes_sent - net0.bytes_sent),
                    "system/network.recv": float(net.bytes_recv - net0.bytes_recv),
                    "system/disk.usage_percent": psutil.disk_usage("/").percent,
                }
                sample.update(self._gpu_sample())
                self._emit(sample)
            except Exception as exc:
                log.debug("system sampling failed: %s", exc)
