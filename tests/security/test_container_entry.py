"""The image's entry command, run the way the container runs it (there is no container engine).

The command and its defaults are read from the Dockerfile itself, and run in a subprocess with
a clean environment and an empty working directory, as in the image. The last test builds the
image's virtualenv for real, with the build stage's own `RUN` commands, from the build context
`.dockerignore` lets through (~30 s; set CONNECTOR_SKIP_INSTALL_TEST=1 to skip it on a machine
without a package index), and checks that it holds no emulator code.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from packaging.markers import Marker

from sandbox.server import free_port

ROOT = Path(__file__).resolve().parents[2]
# Enough for the settings to validate; nothing is called at start-up.
CONNECTOR_ENV = {
    "CTP_CLIENT_ID": "client",
    "CTP_CLIENT_SECRET": "entry-test-ctp-secret",
    "CTP_PROJECT_KEY": "shop",
    "CTP_API_URL": "http://127.0.0.1:9",
    "CTP_AUTH_URL": "http://127.0.0.1:9",
    "NEW_STORE_BASE_URL": "http://127.0.0.1:9",
    "NEW_STORE_SHOP": "storefront",
    "NEW_STORE_USERNAME": "user",
    "NEW_STORE_PASSWORD": "entry-test-ns-password",
}


def stages() -> list[list[str]]:
    """The Dockerfile's instructions, one list per FROM, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    found: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            found.append([])
        elif line and not line.startswith("#") and found:
            found[-1].append(line)
    return found


def final_stage() -> list[str]:
    return stages()[-1]


def build_stage_installs(venv: Path) -> list[list[str]]:
    """The build stage's `RUN /opt/venv/bin/pip ...` commands, aimed at `venv`."""
    runs = [line.removeprefix("RUN ") for line in stages()[0] if line.startswith("RUN ")]
    return [
        [part.replace("/opt/venv", str(venv)) for part in shlex.split(run)]
        for run in runs
        if run.startswith("/opt/venv/bin/pip ")
    ]


def image_command() -> list[str]:
    cmd = [line for line in final_stage() if line.startswith("CMD ")][-1]
    return list(json.loads(cmd.removeprefix("CMD ")))


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in final_stage():
        if line.startswith("ENV "):
            for pair in shlex.split(line.removeprefix("ENV ")):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def container_env(bin_dir: Path, home: Path, **overrides: str) -> dict[str, str]:
    """The image's ENV, PATH led by the virtualenv, the connector's variables; nothing else."""
    env = {name: value for name, value in image_env().items() if name != "PATH"}
    return {
        **env,
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        **CONNECTOR_ENV,
        **overrides,
    }


@contextmanager
def running(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_healthy(process: subprocess.Popen[str], port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            pytest.fail(f"the app exited with {process.returncode}:\n{output}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert "server" not in response.headers  # uvicorn's banner is off
        return
    pytest.fail("the app did not answer /health in time")


def stop_gracefully(process: subprocess.Popen[str]) -> str:
    """SIGTERM, as Cloud Run sends before SIGKILL: the app shuts down on its own, in time.

    uvicorn re-raises the signal once it has shut down, so the status is -SIGTERM (or 0).
    """
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    return output


def test_the_dockerfile_runs_the_entry_module_as_a_non_root_user() -> None:
    stage = final_stage()

    assert image_command() == ["python", "-m", "cli.serve"]
    assert image_env()["APP"] == "event" and image_env()["PORT"] == "8080"
    assert any(line.startswith("USER ") and line != "USER root" for line in stage)


LIFECYCLE_KEY = "entry-test-lifecycle-api-key-0123456789abcdef"


@pytest.mark.parametrize("app", ["event", "job", "lifecycle"])
def test_the_entry_command_serves_each_app_on_port(tmp_path: Path, app: str) -> None:
    port = free_port()
    own = {"LIFECYCLE_API_KEY": LIFECYCLE_KEY} if app == "lifecycle" else {}
    env = container_env(Path(sys.executable).parent, tmp_path, APP=app, PORT=str(port), **own)

    with running(image_command(), env, tmp_path) as process:
        wait_healthy(process, port)
        output = stop_gracefully(process)

    assert "Traceback" not in output
    for secret in ("entry-test-ctp-secret", "entry-test-ns-password", LIFECYCLE_KEY):
        assert secret not in output


@pytest.mark.parametrize("app", ["", "worker"])
def test_an_unknown_app_is_a_clear_error(tmp_path: Path, app: str) -> None:
    env = container_env(Path(sys.executable).parent, tmp_path, APP=app)

    result = subprocess.run(
        image_command(), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 2
    assert "set APP (or the first argument) to one of: event, job" in result.stderr


def build_context(destination: Path) -> Path:
    """What `docker build` would receive: the `!` entries of .dockerignore, minus caches."""
    included = [
        line[1:].strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".env", ".env.*")
    destination.mkdir()
    for name in included:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.mark.skipif(
    os.environ.get("CONNECTOR_SKIP_INSTALL_TEST") == "1", reason="CONNECTOR_SKIP_INSTALL_TEST=1"
)
def test_the_image_virtualenv_installs_and_serves(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    installs = build_stage_installs(venv)
    assert len(installs) == 2  # the pinned dependencies, then the project without any more
    for command in installs:
        done = subprocess.run(command, cwd=context, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    workdir = tmp_path / "app"  # the image's empty WORKDIR: no source to import from
    workdir.mkdir()
    port = free_port()
    env = container_env(venv / "bin", tmp_path, APP="event", PORT=str(port))

    with running(image_command(), env, workdir) as process:
        wait_healthy(process, port)
        stop_gracefully(process)
    cli = subprocess.run(
        ["newstore-connector", "--help"], env=env, cwd=workdir, capture_output=True, text=True
    )

    assert cli.returncode == 0 and "post-deploy" in cli.stdout  # the Cloud Run job's command
    assert "demo" not in cli.stdout  # the sandbox's commands live in the clone only
    emulator_code = subprocess.run(
        [
            "python",
            "-c",
            "import importlib.util as u; print(u.find_spec('sandbox'), u.find_spec('graphql'))",
        ],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert emulator_code.stdout.split() == ["None", "None"], emulator_code.stderr
    site_packages = next(venv.glob("lib/python*/site-packages"))
    assert not (site_packages / "sandbox").exists()
    assert installed_distributions(venv) == pinned_runtime_names() | {"newstore-connector"}


def installed_distributions(venv: Path) -> set[str]:
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    names = {canonical(d["name"]) for d in json.loads(listed.stdout)}
    return names - {"pip", "setuptools", "wheel"}


def pinned_runtime_names() -> set[str]:
    """The distributions requirements/runtime.txt pins for this interpreter and platform."""
    names = set()
    for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines():
        if "==" not in line or line.startswith((" ", "#")):
            continue
        requirement, _, marker = line.rstrip(" \\").partition(";")
        if not marker.strip() or Marker(marker.strip()).evaluate():
            names.add(canonical(requirement.split("==")[0]))
    return names


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
