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
# Many workers, one database: the pools whose workers share a stage (README "Many workers").
SHARED_POOLS = {"streetaudit-gpu": {"segment", "predict", "explain"}, "streetaudit-collect": {"collect"}}


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
    for pool in SHARED_POOLS:
        for command in (
            f"prefect work-pool create {pool} --type process",
            f"prefect worker start --pool {pool} --limit 1",
        ):
            assert command in readme, command


def test_the_shared_pools_run_one_leased_stage_a_deployment_and_never_serialise_it() -> None:
    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    shared = [d for d in project["deployments"] if d["work_pool"]["name"] in SHARED_POOLS]
    stages = {d["parameters"]["stages"][0]: d["work_pool"]["name"] for d in shared}
    assert stages == {stage: pool for pool, chosen in SHARED_POOLS.items() for stage in chosen}
    for deployment in shared:
        # One stage (points and clean must not run N times at once), as many runs as workers:
        # a concurrency limit would make the other workers' runs wait instead of sharing.
        assert len(deployment["parameters"]["stages"]) == 1, deployment["name"]
        assert "concurrency_limit" not in deployment and deployment["schedules"] == [], deployment["name"]
        stage = deployment["parameters"]["stages"][0]
        if stage != "collect":
            assert deployment["parameters"][stage]["device"] == "cuda", deployment["name"]


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
        for pool in (POOL, *SHARED_POOLS):
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"), overwrite=True)
        deployed = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        weekly = await client.read_deployment_by_name("pipeline/weekly-full")
        shared = {name: await client.read_deployment_by_name(f"pipeline/{name}") for name in SHARED}
        hourly = await client.read_deployment_by_name("pipeline/hourly-stats")
        run_id = (await client.create_flow_run_from_deployment(hourly.id)).id
        async with ProcessWorker(work_pool_name=POOL) as worker:
            await worker.get_and_submit_flow_runs()
        # The worker waits for the runs it started when it stops.
        state = (await client.read_flow_run(run_id)).state
        return {"hourly-stats": state, "weekly-full": weekly, **shared}


# The many-worker deployments as `prefect deploy` stores them: pool, entrypoint, parameters.
SHARED = {
    "gpu-segment": (
        "streetaudit-gpu",
        {"stages": ["segment"], "segment": {"backend": "hf", "device": "cuda"}},
    ),
    "gpu-predict": (
        "streetaudit-gpu",
        {"stages": ["predict"], "predict": {"model": "toy-detector", "device": "cuda"}},
    ),
    "gpu-explain": (
        "streetaudit-gpu",
        {"stages": ["explain"], "explain": {"model": "toy-detector", "method": "gradcam", "device": "cuda"}},
    ),
    "collect-workers": ("streetaudit-collect", {"stages": ["collect"], "collect": {"provider": "synthetic"}}),
}


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
    env |= {
        "STREETAUDIT_ROADS_FILE": "",
        "STREETAUDIT_AREAS_FILE": "",
        "STREETAUDIT_DETECTOR": "toy-detector",
    }
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
    for name, (pool, parameters) in SHARED.items():
        deployment = found[name]
        assert (deployment.work_pool_name, deployment.entrypoint) == (pool, "flows/pipeline.py:pipeline_flow")
        assert deployment.parameters == parameters, name
