"""Shared fixtures: small problems and quiet warnings."""

import os
import tempfile
import warnings

# One CPU code path on every x86 machine, set before torch loads (here and in the notebook
# kernels, which inherit the environment): MKL's conditional numerical reproducibility, ATen's
# portable kernels and oneDNN's SSE4.1 kernels. Without them a float sum's order follows the
# machine's vector units and vendor, and the smoke tables' last digits (and a tolerance-stopped
# solver's step count) differed between machines of this project: 03, 06, 10 and 11 failed on an
# AMD EPYC with AVX-512 against references made elsewhere. tools/refresh_references.py makes the
# references under the same settings (REPRODUCIBLE_CPU); the tests run about twice as long.
REPRODUCIBLE_CPU = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                    "OMP_NUM_THREADS": "1"}
for _name, _value in REPRODUCIBLE_CPU.items():
    os.environ[_name] = _value

import pytest  # noqa: E402

from hpolab import sphere  # noqa: E402


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
# Notebook kernels (nbval, papermill) train on one thread (OMP_NUM_THREADS above), as
# tools/refresh_references.py made the smoke references: a float sum's order, and so a smoke
# table's last digits, depends on the thread count, which differs between machines.
