"""Measuring what a hypergradient costs: counters, wall time and peak memory."""

from __future__ import annotations

import os
import threading
import time

import torch

from hpolab.protocol import Cost


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except OSError:  # not Linux: peak memory is not measured on the CPU
        return 0


class Meter:
    """Counts evaluations while a hypergradient is computed, and measures time and memory.

    Peak memory is the allocator's peak on CUDA; on the CPU it is the peak resident set
    size above the start, sampled every millisecond by a background thread: coarser, and
    it depends on the C allocator's history (memory freed earlier and reused does not
    show), so compare CPU numbers from fresh processes (as ``benchmarks/hypergrad.py`` does).
    """

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.gradient_evaluations = 0
        self.function_evaluations = 0
        self.hvp_evaluations = 0
        self._peak = 0
        self._running = False

    def __enter__(self) -> "Meter":
        self._start = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = _resident_bytes()
            self._running = True
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self._peak = max(self._peak, _resident_bytes() - self._base)
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._running = False
            self._thread.join()
            self._peak = max(self._peak, _resident_bytes() - self._base)
        self._elapsed = time.perf_counter() - self._start

    def cost(self) -> Cost:
        elapsed = getattr(self, "_elapsed", time.perf_counter() - getattr(self, "_start", time.perf_counter()))
        return Cost(self.gradient_evaluations, self.function_evaluations, self.hvp_evaluations, elapsed,
                    max(self._peak, 0))
