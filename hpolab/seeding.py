"""Seeding: every random draw of a run comes from one generator made here, or, for what
draws from torch's global generator and takes none (a module's own initialization, dropout),
from :func:`global_seed`, which seeds it for one block and restores it after."""

from __future__ import annotations

import contextlib
import random
import threading

import numpy as np
import torch


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator for ``seed``; draws are made on the CPU and then moved, so a
    seed gives the same numbers on every device."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return torch.Generator().manual_seed(seed)


_GLOBAL_RNG = threading.RLock()  # one block at a time: threads would interleave their draws


@contextlib.contextmanager
def global_seed(seed: int):
    """Torch's global CPU generator seeded with ``seed`` inside the block and restored after it
    (``torch.random.fork_rng``): what the block draws depends on ``seed`` alone, and the
    caller's random state is left as it was. Held under a lock, so that runs training in
    several threads (HOZOG spread over devices) do not interleave their draws."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch's global generators too (for code outside hpolab)."""
    generator = make_generator(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return generator
