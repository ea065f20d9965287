"""Work spread over a Dask cluster: HOZOG's q + 1 trainings and black-box trials as jobs.

``hpolab sweep --address`` sends whole notebooks to a cluster (:mod:`hpolab.sweep`). Inside one
run, the methods take a ``concurrent.futures`` executor instead: HOZOG trains each of its q + 1
runs as a job (``zeroth_order(..., executor=...)``) and the black-box searches train
``parallel`` trials at once (``blackbox_search(..., executor=..., parallel=n)``). A Dask
client's ``get_executor()`` is such an executor, so the same code runs on threads, on local
processes or on a cluster. Jobs carry the task itself (closures and tensors, pickled by
cloudpickle), so workers need hpolab installed but not the data. Each worker process trains one
job at a time, so results are the same as training the jobs one by one; a thread pool in one
process would run them concurrently on torch's shared CPU thread pool, which is not bit-stable.

Example:
  >>> with cluster(workers=2) as executor:                       # doctest: +SKIP
  ...     estimator = zeroth_order(q=3, executor=executor)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from hpolab.validation import check_count


@contextmanager
def cluster(address: str | None = None, workers: int = 2, timeout: float = 10.0) -> Iterator:
    """A ``concurrent.futures`` executor on a Dask cluster, closed on exit.

    Args:
      address: a running scheduler (``tcp://host:8786``); None starts a local cluster of
        ``workers`` processes with one thread each, on loopback.
      workers: processes of the local cluster, >= 1.
      timeout: seconds to wait for the scheduler and its first worker.

    Raises:
      ValueError: the scheduler cannot be reached or has no worker (one line saying which).
    """
    from dask.distributed import Client, LocalCluster

    from hpolab.sweep import connect

    if address is None:
        check_count("workers", workers, minimum=1)
        local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                             dashboard_address=None)
        client = Client(local, set_as_default=False)
    else:
        local, client = None, connect(address, timeout)
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if local is not None:
            local.close()
