"""Shared fixtures: small problems and quiet warnings."""

import os
import tempfile
import warnings

import pytest

from hpolab import sphere


@pytest.fixture
def quadratic():
    """A small random rotated, shifted, ill-conditioned quadratic (kappa = 10)."""
    return sphere(6, 4, ill_conditioned=True, seed=3)


@pytest.fixture(autouse=True)
def _quiet_optuna():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        yield


# Studies cache finished pieces under $HPOLAB_RUNS/cache (hpolab.cache): give the whole test
# session, notebook kernels included, a fresh folder, so that every test computes what it checks.
os.environ["HPOLAB_RUNS"] = tempfile.mkdtemp(prefix="hpolab-test-runs-")
# Notebook kernels (nbval, papermill) train on one thread, as tools/refresh_references.py made
# the smoke references: a float sum's order, and so a smoke table's last digits, depends on the
# thread count, which differs between machines.
os.environ["OMP_NUM_THREADS"] = "1"
