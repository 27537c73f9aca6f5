"""prefect.yaml deployed as the README says (`prefect deploy --all` against a Prefect server, a
process work pool, a worker) runs; a deployment whose environment variable was empty stops at
once, naming the variable (checked on the parameters `prefect deploy` really stored)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from streetaudit.flows.deployments import HOME, PLACEHOLDER, VARIABLES, enter_home, refuse_empty_variables
from streetaudit.flows.errors import InputError
from streetaudit.testing.seeded_results import synthetic_models

ROOT = Path(__file__).resolve().parents[1]
POOL = "streetaudit"


def placeholders(value, prefix: str = "") -> dict[str, str]:
    """Every `{{ $VAR }}` in a deployment's parameters, by dotted parameter name."""
    if isinstance(value, dict):
        found: dict[str, str] = {}
        for key, item in value.items():
            found |= placeholders(item, f"{prefix}{key}.")
        return found
    match = PLACEHOLDER.search(value) if isinstance(value, str) else None
    return {prefix.rstrip("."): match.group(1)} if match else {}


def test_the_flows_check_every_variable_prefect_yaml_fills() -> None:
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    filled: dict[str, str] = {}
    for deployment in project["deployments"]:
        filled |= placeholders(deployment.get("parameters", {}))
    assert filled == VARIABLES
    (step,) = project["pull"]
    assert step == {"streetaudit.flows.deployments.enter_home": {"directory": f"{{{{ ${HOME} }}}}"}}
    # The provider is the deployer's choice, not fixed in the file.
    collecting = [d for d in project["deployments"] if "collect" in d.get("parameters", {})]
    assert collecting and all(
        d["parameters"]["collect"]["provider"] == "{{ $STREETAUDIT_PROVIDER }}" for d in collecting
    )
    readme = (ROOT / "README.md").read_text()
    for variable in [HOME, *VARIABLES.values()]:
        assert variable in readme, variable
    for command in ("prefect work-pool create streetaudit --type process", "prefect deploy --all",
                    "prefect worker start --pool streetaudit"):  # fmt: skip
        assert command in readme, command


def test_empty_variables_and_home_are_refused_by_name(tmp_path, monkeypatch) -> None:
    with pytest.raises(InputError, match=r"roads.path is empty: .*\$STREETAUDIT_ROADS_FILE"):
        refuse_empty_variables({"roads": {"path": ""}, "areas": {"path": "a.gpkg"}})
    with pytest.raises(InputError, match=r"collect.provider .*STREETAUDIT_PROVIDER"):
        refuse_empty_variables({"collect": {"provider": "{{ $STREETAUDIT_PROVIDER }}"}})
    refuse_empty_variables({"roads": {"path": None}, "collect": {"provider": "google"}, "path": "x"})
    monkeypatch.delenv(HOME, raising=False)
    with pytest.raises(InputError, match="STREETAUDIT_HOME is not set"):
        enter_home("")
    with pytest.raises(InputError, match="not the streetaudit folder"):
        enter_home(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert enter_home(str(ROOT)) == {"directory": str(ROOT)} and Path.cwd() == ROOT


@pytest.fixture(scope="module")
def stats_db(helsinki_db_url: str) -> str:
    synthetic_models(helsinki_db_url, seeds=(41,))
    return helsinki_db_url


async def _deploy_run_and_work(env: dict[str, str]) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=POOL, type="process"), overwrite=True)
        deployed = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        weekly = await client.read_deployment_by_name("pipeline/weekly-full")
        hourly = await client.read_deployment_by_name("pipeline/hourly-stats")
        run_id = (await client.create_flow_run_from_deployment(hourly.id)).id
        async with ProcessWorker(work_pool_name=POOL) as worker:
            await worker.get_and_submit_flow_runs()
        # The worker waits for the runs it started when it stops.
        return {"hourly-stats": (await client.read_flow_run(run_id)).state, "weekly-full": weekly}


@pytest.mark.slow
def test_deploy_all_then_a_process_worker_runs_the_deployments(
    prefect_harness, stats_db, monkeypatch, tmp_path
) -> None:
    from prefect.settings import PREFECT_API_URL

    with psycopg.connect(stats_db) as conn:
        version = conn.execute("SELECT coalesce(max(version), 0) FROM api.data_version").fetchone()[0]
    # The deployer's environment: the weekly roads and areas files left empty, as happened.
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), HOME: str(ROOT)}
    env |= {"STREETAUDIT_PROVIDER": "synthetic", "STREETAUDIT_LABELS_DIR": str(tmp_path)}
    env |= {"STREETAUDIT_ROADS_FILE": "", "STREETAUDIT_AREAS_FILE": ""}
    # The worker's environment names the database; the flow runs inherit it.
    monkeypatch.setenv("STREETAUDIT_DATABASE_URL", stats_db)
    found = asyncio.run(_deploy_run_and_work(env))
    assert found["hourly-stats"].is_completed(), found["hourly-stats"]
    with psycopg.connect(stats_db) as conn:
        assert conn.execute("SELECT max(version) FROM api.data_version").fetchone()[0] != version
    # What `prefect deploy` stored for the empty variables, and what a run of it does first.
    weekly = found["weekly-full"]
    assert (
        weekly.parameters["roads"]["path"] == "" and weekly.parameters["collect"]["provider"] == "synthetic"
    )
    with pytest.raises(InputError, match=r"roads.path is empty: .*\$STREETAUDIT_ROADS_FILE"):
        refuse_empty_variables(weekly.parameters)
