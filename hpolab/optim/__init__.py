"""Optimizers that adapt their own learning rate: hypergradient descent (Baydin et al., 2018)."""

from hpolab.optim.hypergradient import AdamHD, SGDHD

__all__ = ["AdamHD", "SGDHD"]
