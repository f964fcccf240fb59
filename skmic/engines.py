"""Running skmic's searches on existing engines: a joblib backend for Dask.

A ``GridSearchCV`` over skmic estimators runs on a Dask cluster through
joblib's Dask backend (the user guide's "Distributed" page). That backend, as
of joblib 1.6, loses a failure that happens outside the task's own code: when
the worker process running a fit dies (killed, out of memory), Dask marks the
task as failed (``KilledWorker``), but the backend never tells joblib, whose
result collection then waits for the task forever. :func:`register_dask_backend`
registers the same backend with that failure reported, so the search raises
``KilledWorker`` instead of hanging.
"""

import asyncio

__all__ = ["register_dask_backend"]

#: the name under which :func:`register_dask_backend` registers the backend
DASK_BACKEND = "skmic-dask"


def _dask_backend_class():
    from joblib._dask import DaskDistributedBackend

    class DaskBackend(DaskDistributedBackend):
        """joblib's Dask backend, with tasks that failed outside their code reported to joblib.

        The collection loop is joblib's, with one change: a future in the
        "error" state (the task itself cannot raise: joblib wraps it so that
        its exceptions come back as results) also reaches the batch's
        callback, with the exception, which joblib records as the batch's
        failure; joblib's own loop only sets the exception on a future that
        nothing waits on.
        """

        async def _collect(self):
            while self._continue:
                async for future, result in self.waiting_futures:
                    cf_future = self._results.pop(future)
                    callback = self._callbacks.pop(future)
                    if future.status == "error":
                        _, exc, _ = result
                        cf_future.set_exception(exc)
                        callback(exc)  # joblib raises an exception it is given as the batch's result
                    else:
                        cf_future.set_result(result)
                        callback(result)
                await asyncio.sleep(0.01)

    return DaskBackend


def register_dask_backend():
    """Register the joblib backend "skmic-dask": Dask's, with dead workers reported.

    Use it as joblib's "dask" backend (it takes the same options, such as
    ``scatter``) when a worker may die in the middle of a fit: the search then
    raises ``distributed.scheduler.KilledWorker``, which names the task whose
    workers died, where joblib's own Dask backend (joblib 1.6) can wait
    forever. It runs on the ``distributed.Client`` current when the search
    starts, as joblib's does.

    Requires the ``dask`` extra (``pip install "skmic[dask]"``).

    Returns
    -------
    name : str
        "skmic-dask", the name to give ``joblib.parallel_config(backend=...)``.

    Examples
    --------
    >>> import joblib
    >>> from skmic.engines import register_dask_backend
    >>> name = register_dask_backend()
    >>> with joblib.parallel_config(backend=name):  # doctest: +SKIP
    ...     search.fit(X)
    """
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            'the "skmic-dask" backend needs dask and distributed: pip install "skmic[dask]"'
        ) from exc
    from joblib import register_parallel_backend

    register_parallel_backend(DASK_BACKEND, _dask_backend_class())
    return DASK_BACKEND
