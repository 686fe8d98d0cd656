"""What every command shares: the console, and running one async command."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from connector.logs import configure_logging
from connector.settings import ConfigError, Settings

console = Console()

T = TypeVar("T")


def run(command: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    """Run one async command; a configuration error is a clear message and exit code 2."""
    configure_logging("WARNING")
    try:
        return asyncio.run(command(Settings()))
    except ConfigError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
