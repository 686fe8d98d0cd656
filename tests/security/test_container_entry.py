"""The image's entry command, run the way the container runs it (there is no container engine).

The command and its defaults are read from the Dockerfile itself, and run in a subprocess with
a clean environment and an empty working directory, as in the image. The last test builds the
image's virtualenv for real, from the build context `.dockerignore` lets through (~20 s; set
CONNECTOR_SKIP_INSTALL_TEST=1 to skip it on a machine without a package index).
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


def final_stage() -> list[str]:
    """The Dockerfile's instructions after its last FROM, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.startswith("FROM "))
    return instructions[last_from + 1 :]


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

    assert image_command() == ["python", "-m", "connector.serve"]
    assert image_env()["APP"] == "event" and image_env()["PORT"] == "8080"
    assert any(line.startswith("USER ") and line != "USER root" for line in stage)


@pytest.mark.parametrize("app", ["event", "job"])
def test_the_entry_command_serves_each_app_on_port(tmp_path: Path, app: str) -> None:
    port = free_port()
    env = container_env(Path(sys.executable).parent, tmp_path, APP=app, PORT=str(port))

    with running(image_command(), env, tmp_path) as process:
        wait_healthy(process, port)
        output = stop_gracefully(process)

    assert "Traceback" not in output
    for secret in ("entry-test-ctp-secret", "entry-test-ns-password"):
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
            shutil.copy2(source, destination / name)
    return destination


@pytest.mark.skipif(
    os.environ.get("CONNECTOR_SKIP_INSTALL_TEST") == "1", reason="CONNECTOR_SKIP_INSTALL_TEST=1"
)
def test_the_image_virtualenv_installs_and_serves(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(context)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stderr[-3000:]
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
