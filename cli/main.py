"""The `newstore-connector` command line: orders, inventory, and the deploy scripts."""

from __future__ import annotations

import typer

from cli.deploy import post_deploy_command, pre_undeploy_command
from cli.doctor import doctor_command
from cli.inventory import inventory_app
from cli.orders import orders_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(orders_app, name="orders")
app.add_typer(inventory_app, name="inventory")
app.command("post-deploy")(post_deploy_command)
app.command("pre-undeploy")(pre_undeploy_command)
app.command("doctor")(doctor_command)


def main() -> None:
    app()
