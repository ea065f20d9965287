"""Seeding: every random draw of a run comes from one generator made here."""

from __future__ import annotations

import random

import numpy as np
import torch


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator for ``seed``; draws are made on the CPU and then moved, so a
    seed gives the same numbers on every device."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch's global generators too (for code outside hpolab)."""
    generator = make_generator(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return generator
