"""docker-compose.yml and prefect.yaml describe services and flows that exist.

No Docker engine runs here, so the compose file is checked structurally (and with
`docker compose config` where that client exists); the Prefect deployments are checked
against the real flow they name.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_services_depend_on_each_other_correctly_and_readers_stay_readers() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "app", "api", "pg_tileserv", "prefect-server", "prefect-worker"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            named = volume.split(":")[0]
            if not named.startswith((".", "/")):
                assert named in compose.get("volumes", {}), (name, named)
    built = [s for s in services.values() if "build" in s]
    assert built and all(s.get("image") == "streetaudit:latest" for s in built)
    assert (ROOT / "Dockerfile").exists()
    # What readers touch connects as the read-only role.
    assert services["pg_tileserv"]["environment"]["DATABASE_URL"].startswith(
        "postgresql://streetaudit_reader:"
    )
    assert services["api"]["environment"]["STREETAUDIT_API_DATABASE_URL"].startswith(
        "postgresql://streetaudit_reader:"
    )
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        result = subprocess.run(
            ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


def test_prefect_deployments_name_real_flows_with_valid_parameters_and_schedules() -> None:
    from prefect import Flow
    from prefect.client.schemas.schedules import CronSchedule

    from streetaudit.flows.pipeline import STAGES, PipelineOptions

    project = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = project["deployments"]
    assert len(deployments) >= 2
    for deployment in deployments:
        path, function = deployment["entrypoint"].split(":")
        assert (ROOT / path).exists(), deployment["name"]
        module = "streetaudit." + path.removesuffix(".py").replace("/", ".")
        flow = getattr(__import__(module, fromlist=[function]), function)
        assert isinstance(flow, Flow), deployment["name"]
        accepted = set(inspect.signature(flow.fn).parameters)
        parameters = deployment.get("parameters", {})
        assert set(parameters) <= accepted, (deployment["name"], set(parameters) - accepted)
        assert set(parameters.get("stages", [])) <= set(STAGES)
        for stage in set(parameters) & (set(STAGES) - {"roads", "areas"}):  # those two: test_load_options
            PipelineOptions.model_fields[stage].annotation.model_validate(parameters[stage])
        for schedule in deployment["schedules"]:
            CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
