"""The `newstore-connector` command line: orders, inventory, lifecycle, and the deploy scripts."""

from __future__ import annotations

import typer

from cli.common import Options
from cli.deploy import post_deploy_command, pre_undeploy_command
from cli.doctor import doctor_command
from cli.inventory import inventory_app
from cli.lifecycle import lifecycle_app
from cli.orders import orders_app

# No local variables in a traceback, ever: they hold bearer tokens and secrets. typer honours
# this since 0.7 (pyproject asks for a version that does); tracebacks need --debug anyway.
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help=__doc__,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_short=True,
)


@app.callback()
def main_options(
    debug: bool = typer.Option(
        False, "--debug", help="on a failure, show the Python traceback (without variables)"
    ),
) -> None:
    """The `newstore-connector` command line: orders, inventory, and the deploy scripts."""
    Options.debug = debug


app.add_typer(orders_app, name="orders")
app.add_typer(inventory_app, name="inventory")
app.add_typer(lifecycle_app, name="lifecycle")
app.command("post-deploy")(post_deploy_command)
app.command("pre-undeploy")(pre_undeploy_command)
app.command("doctor")(doctor_command)


def main() -> None:
    app()
