"""What the deployments in prefect.yaml need from the environment, checked before they work.

`prefect deploy` fills each `{{ $VAR }}` from the environment it runs in and stores an empty
string for a variable that is unset or empty. A pipeline given an empty roads file then quietly
used the roads already loaded (weekly-full did, every week). So a flow run refuses, at once and
naming the variable, a parameter that prefect.yaml fills from the environment and that arrived
empty; and the worker's pull step refuses an unset STREETAUDIT_HOME instead of failing to
`chdir('')`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streetaudit.flows.errors import InputError

# Flow parameter (dotted) -> the environment variable prefect.yaml fills it from.
# tests/test_deployments.py checks that this is every `{{ $VAR }}` parameter of prefect.yaml.
VARIABLES = {
    "roads.path": "STREETAUDIT_ROADS_FILE",
    "areas.path": "STREETAUDIT_AREAS_FILE",
    "collect.provider": "STREETAUDIT_PROVIDER",
    "path": "STREETAUDIT_LABELS_DIR",
    "predict.model": "STREETAUDIT_DETECTOR",
    "explain.model": "STREETAUDIT_DETECTOR",
}
HOME = "STREETAUDIT_HOME"
PLACEHOLDER = re.compile(r"\{\{\s*\$([A-Z0-9_]+)\s*\}\}")


def run_parameters() -> dict[str, Any]:
    """The current flow run's parameters as stored (JSON, before validation); {} outside a run."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return {}
    return dict(context.flow_run.parameters or {})


def _dig(parameters: Mapping[str, Any], dotted: str) -> Any:
    value: Any = parameters
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def refuse_empty_variables(parameters: Mapping[str, Any] | None = None) -> None:
    """Stop a run whose environment-filled parameter is empty (or still a `{{ $VAR }}`)."""
    parameters = run_parameters() if parameters is None else parameters
    for dotted, variable in VARIABLES.items():
        value = _dig(parameters, dotted)
        if isinstance(value, str) and (not value.strip() or PLACEHOLDER.search(value)):
            raise InputError(
                f"parameter {dotted} is empty: prefect.yaml fills it from ${variable}, which was unset "
                f"or empty when `prefect deploy` ran. Set {variable} and run `prefect deploy --all` "
                f"again, or give {dotted} when starting the run"
            )


def enter_home(directory: str | None = None) -> dict[str, str]:
    """The deployments' pull step: work in STREETAUDIT_HOME (the folder holding prefect.yaml).

    Prefect's own `set_working_directory` would fail on an unset variable with
    "No such file or directory: ''", which names neither the variable nor the fix.
    """
    directory = directory if directory and not PLACEHOLDER.search(directory) else os.environ.get(HOME, "")
    if not directory.strip():
        raise InputError(
            f"{HOME} is not set for the worker: set it to the streetaudit folder holding prefect.yaml "
            "(the worker's environment, or `prefect deploy` run with it set)"
        )
    folder = Path(directory).expanduser()
    if not (folder / "flows").is_dir():
        raise InputError(f"{HOME}={directory}: not the streetaudit folder (no flows/ there)")
    os.chdir(folder)
    return {"directory": str(folder.resolve())}
