"""What every command shares: output, `--json`, and turning any failure into one line.

Exit codes: 0 done; 1 the command ran and something it reports failed (an order not
injected, a SKU not written); 2 configuration or usage; 3 an upstream failed (unreachable,
refused credentials, an error answer); 70 a bug (the traceback with `--debug`).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from connector.deploy import DeployConfigError
from connector.http import UpstreamError
from connector.logs import configure_logging
from connector.settings import ConfigError, Settings

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UPSTREAM = 3
EXIT_BUG = 70
# Wide enough that no id is ever cut when the output is piped or captured.
PIPED_WIDTH = 100_000

T = TypeVar("T")


class Options:
    """The global options (`newstore-connector --debug ...`)."""

    debug = False


def out() -> Console:
    """The console for stdout: the terminal's width there, never cut when piped."""
    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)


def err() -> Console:
    return Console(stderr=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)


def print_json(data: Any) -> None:
    """One JSON document on stdout, nothing else (for scripts: `... --json | jq`)."""
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """One line on stderr, and the exit code."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run(command: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run one async command; every failure is one line on stderr and an exit code.

    The line names what failed: the variable, or the service, host and status. With
    `--debug` the failure is raised instead, so typer prints its traceback (never with
    local variables: cli/main.py turns them off, as they would hold tokens)."""
    configure_logging("DEBUG" if Options.debug else "ERROR", stream=sys.stderr)
    try:
        return asyncio.run(command(Settings()))
    except ConfigError as error:
        if Options.debug:
            raise
        for problem in error.problems:
            typer.echo(f"error: configuration: {problem}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except DeployConfigError as error:
        if Options.debug:
            raise
        fail(f"configuration: {error}", EXIT_CONFIG)
    except UpstreamError as error:
        if Options.debug:
            raise
        fail(error.one_line(), EXIT_UPSTREAM)
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as error:
        if Options.debug:
            raise
        fail(
            f"unexpected {type(error).__name__} (a bug: run with --debug for the traceback)",
            EXIT_BUG,
        )
