"""What a stage tells the Prefect run it is part of: its counts in the run's log, a table
artifact, and a progress artifact while it works.

People watch a deployment in the Prefect UI, not a terminal, so a stage that only printed would
leave its run mute. Outside a run (the stage commands, tests calling the plain functions) there
is no run to tell: the log goes to the `streetaudit` logger and no artifact is made, so the plain
functions stay usable without a Prefect server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from rich.progress import Progress, TaskID

SCALARS = (int, float, str, bool, type(None))


def in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger (its lines reach the API and the UI), else the package's own."""
    if in_run():
        from prefect import get_run_logger

        return get_run_logger()
    return logging.getLogger("streetaudit")


# Where `streetaudit run pipeline` prints a stage's summary when Prefect's console would not show
# it (PREFECT_LOGGING_LEVEL above INFO); a worker has no terminal and sets none.
_echo: ContextVar[Callable[[str], None] | None] = ContextVar("streetaudit_echo", default=None)


@contextlib.contextmanager
def echoing(write: Callable[[str], None]) -> Iterator[None]:
    token = _echo.set(write)
    try:
        yield
    finally:
        _echo.reset(token)


@contextlib.contextmanager
def echo_later() -> Iterator[Callable[[str], None]]:
    """For a flow whose tasks may run where its context is not (Dask workers): inside, `tell`
    echoes nothing; the flow echoes its tasks' lines itself with the function given."""
    write = _echo.get()
    token = _echo.set(None)

    def echo(text: str) -> None:
        if write is not None and not run_logger().isEnabledFor(logging.INFO):
            write(text)

    try:
        yield echo
    finally:
        _echo.reset(token)


def tell(text: str) -> None:
    """Log `text` on the run; also echo it when the run's log would not reach the terminal.

    With Prefect's default INFO level its console shows the line already; printing it too
    would show every summary twice.
    """
    logger = run_logger()
    logger.info(text)
    echo = _echo.get()
    if echo is not None and not logger.isEnabledFor(logging.INFO):
        echo(text)


def artifact_key(name: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def publish_table(name: str, rows: Sequence[dict[str, Any]], description: str) -> bool:
    """A table artifact on the current run; False (nothing made) outside a run or for no rows."""
    if not in_run() or not rows:
        return False
    from prefect.artifacts import create_table_artifact

    table = [{k: _cell(v) for k, v in row.items()} for row in rows]
    create_table_artifact(table=table, key=artifact_key(name), description=description, _sync=True)  # type: ignore[call-arg]
    return True


def _cell(value: Any) -> Any:
    """JSON-safe cells: NaN and infinities would make the artifact unreadable."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value if isinstance(value, SCALARS) else str(value)


def measures(report: Any, prefix: str = "") -> list[dict[str, Any]]:
    """A report dataclass as (measure, value) rows, nested reports flattened, lists left out."""
    rows: list[dict[str, Any]] = []
    for item in dataclasses.fields(report):
        value = getattr(report, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            rows += measures(value, prefix=f"{prefix}{item.name}.")
        elif isinstance(value, SCALARS):
            rows.append({"measure": prefix + item.name, "value": value})
    return rows


class RunProgress(Progress):
    """A rich progress bar that also keeps a progress artifact and logs a line on the run.

    The bar is for a terminal; a worker has none, so at most every `every` seconds (and at the
    end) the run's progress artifact `<stage>-progress` moves and the log gets "n/total". With
    `disable=True` only the terminal bar is off.
    """

    def __init__(self, *columns: Any, stage: str, every: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.stage = stage
        self.every = every
        self._artifact: Any = None
        self._told = float("-inf")
        self._active = in_run()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._tell_run(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._tell_run(task_id)

    def stop(self) -> None:
        super().stop()
        for task in self.tasks:
            self._tell_run(task.id, final=True)

    def _tell_run(self, task_id: TaskID, final: bool = False) -> None:
        if not self._active or (not final and time.monotonic() - self._told < self.every):
            return
        self._told = time.monotonic()
        task = next((t for t in self.tasks if t.id == task_id), None)
        if task is None or not task.total:
            return
        percent = min(100.0, 100.0 * task.completed / task.total)
        status = " ".join(str(v) for k, v in task.fields.items() if k == "status" and v)
        run_logger().info(
            f"{self.stage}: {task.completed:g}/{task.total:g} ({percent:.0f}%) {status}".rstrip()
        )
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        try:
            if self._artifact is None:
                self._artifact = create_progress_artifact(  # type: ignore[call-arg]
                    progress=percent, key=artifact_key(f"{self.stage}-progress"), _sync=True
                )
            else:
                update_progress_artifact(self._artifact, progress=percent, _sync=True)  # type: ignore[call-arg]
        except Exception as error:  # the stage's work matters more than its progress display
            run_logger().warning(f"{self.stage}: cannot update the progress artifact ({error})")
            self._active = False
