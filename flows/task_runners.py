"""The pipeline's task runner: Prefect's thread pool (the default) or a Dask cluster.

The stages are a chain up to `clean`; after it `segment` and `predict` are independent (both
read the cleaned images), as are `stats` and `explain` after them (flows/pipeline.py, NEEDS),
so a runner that runs tasks side by side runs those side by side. Dask (the optional extra
`dask`: prefect-dask) runs them on a cluster's workers: a LocalCluster made for the run, or
the scheduler at `STREETAUDIT_DASK_ADDRESS` (a GPU machine's worker, say, beside a CPU one).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streetaudit.flows.errors import InputError
from streetaudit.flows.settings_loading import load_settings

TASK_RUNNERS = ("thread", "dask")


class DaskSettings(BaseSettings):
    """`STREETAUDIT_DASK_ADDRESS`: a running scheduler (tcp://host:8786); without it a
    LocalCluster of `STREETAUDIT_DASK_WORKERS` workers (default: Dask's, by CPU count), in
    processes unless `STREETAUDIT_DASK_PROCESSES=false` (threads: cheap, for tests)."""

    model_config = SettingsConfigDict(env_prefix="STREETAUDIT_DASK_", env_file=".env", extra="ignore")

    address: str | None = None
    workers: int | None = Field(None, ge=1)
    processes: bool = True
    threads_per_worker: int = Field(1, ge=1)  # a stage uses every core itself: one at a time


def make_task_runner(name: str) -> Any:
    """The Prefect task runner called `name` (one of TASK_RUNNERS), not yet started."""
    if name == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    if name == "dask":
        return dask_task_runner(load_settings(DaskSettings))
    raise InputError(f"--task-runner {name!r}: choose one of {', '.join(TASK_RUNNERS)}")


def dask_task_runner(settings: DaskSettings) -> Any:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise InputError("--task-runner dask needs prefect-dask: pip install 'streetaudit[dask]'") from None
    if settings.address:
        return DaskTaskRunner(address=settings.address)
    cluster: dict[str, Any] = {
        "processes": settings.processes,
        "threads_per_worker": settings.threads_per_worker,
    }
    if settings.workers is not None:
        cluster["n_workers"] = settings.workers
    return DaskTaskRunner(cluster_kwargs=cluster)
