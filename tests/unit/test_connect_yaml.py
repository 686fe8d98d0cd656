"""connect.yaml declares both apps, the deploy scripts, and every variable the code reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from connector.settings import CommercetoolsSettings, NewStoreSettings
from event.settings import OrderSettings
from lifecycle.settings import LifecycleSettings

CONNECT_YAML = Path(__file__).resolve().parents[2] / "connect.yaml"


def apps() -> dict[str, dict[str, Any]]:
    return {app["name"]: app for app in yaml.safe_load(CONNECT_YAML.read_text())["deployAs"]}


def variables(app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    config = app["configuration"]
    entries = config["standardConfiguration"] + config["securedConfiguration"]
    return {entry["key"]: entry for entry in entries}


def test_job_runs_every_five_minutes_on_job() -> None:
    job = apps()["job"]
    assert (job["applicationType"], job["endpoint"]) == ("job", "/job")
    assert job["properties"]["schedule"] == "*/5 * * * *"


def test_event_app_runs_the_python_deploy_scripts() -> None:
    event = apps()["event"]
    assert (event["applicationType"], event["endpoint"]) == ("event", "/event")
    assert event["scripts"] == {
        "postDeploy": "newstore-connector post-deploy",
        "preUndeploy": "newstore-connector pre-undeploy",
    }


def test_every_setting_is_declared_described_and_marked() -> None:
    declared = variables(apps()["event"])
    expected = {f"CTP_{name.upper()}" for name in CommercetoolsSettings.model_fields}
    expected |= {f"NEW_STORE_{name.upper()}" for name in NewStoreSettings.model_fields}
    expected |= {name.upper() for name in OrderSettings.model_fields}
    assert expected - set(declared) == set()
    for entry in declared.values():
        assert entry["description"] and isinstance(entry["required"], bool)


def test_secrets_are_secured() -> None:
    for app in apps().values():
        secured = {e["key"] for e in app["configuration"]["securedConfiguration"]}
        assert {"CTP_CLIENT_SECRET", "NEW_STORE_PASSWORD", "NEW_STORE_CLIENT_SECRET"} <= secured


README = CONNECT_YAML.parent / "README.md"


def readme_required() -> set[str]:
    """The variables whose row in the README's configuration table says plainly `yes`."""
    required: set[str] = set()
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 3 and cells[1] == "yes":
            required |= {name.strip(" `") for name in cells[0].split(",")}
    return required


def test_connect_yaml_and_the_readme_agree_on_what_is_required() -> None:
    assert readme_required() >= {"CTP_CLIENT_ID", "NEW_STORE_SHOP"}  # the table was read
    only_its_own = {"lifecycle": {"LIFECYCLE_API_KEY"}}  # required by that app alone
    for name, app in apps().items():
        required = {key for key, entry in variables(app).items() if entry["required"]}
        assert required - only_its_own.get(name, set()) == readme_required()


def test_the_lifecycle_app_is_a_service_that_needs_its_api_key() -> None:
    lifecycle = apps()["lifecycle"]
    assert (lifecycle["applicationType"], lifecycle["endpoint"]) == ("service", "/lifecycle")
    declared = variables(lifecycle)
    expected = {f"LIFECYCLE_{name.upper()}" for name in LifecycleSettings.model_fields}
    expected -= {"LIFECYCLE_EXTERNAL_ID_SOURCE"}  # read as NEW_STORE_EXTERNAL_ID_SOURCE
    expected |= {"NEW_STORE_EXTERNAL_ID_SOURCE"}
    assert expected - set(declared) == set()
    secured = {e["key"] for e in lifecycle["configuration"]["securedConfiguration"]}
    assert "LIFECYCLE_API_KEY" in secured
    assert declared["LIFECYCLE_API_KEY"]["required"] is True
    # the job (upkeep) and the event app (post-deploy registration) may carry it too
    for name in ("job", "event"):
        assert variables(apps()[name])["LIFECYCLE_API_KEY"]["required"] is False
