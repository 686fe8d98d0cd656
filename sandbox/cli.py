"""`./dev demo` and `./dev sandbox` (`python -m sandbox demo|sandbox`): the connector on one
laptop, from a clone.

The development composition root: it wires both apps to the emulators. It is not part of
the installed product, so the production image carries no emulator code.
"""

from __future__ import annotations

import typer

from sandbox.demo import run_demo, run_sandbox

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command("demo")
def demo_command(orders: int = typer.Option(4, min=1, max=50, help="orders to create")) -> None:
    """Run the whole connector on the embedded sandbox, then exit (no accounts needed)."""
    run_demo(orders)


@app.command("sandbox")
def sandbox_command() -> None:
    """Keep the sandbox and both apps running, and print the URLs and environment to use."""
    run_sandbox()
