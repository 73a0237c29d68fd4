"""``oauthvault worker``: run the background refresher (:func:`oauthvault.worker.run_worker`)."""

from __future__ import annotations

import logging
import sys

import click

from oauthvault.cli.root import load_settings, plain_errors

__all__ = ["worker"]


@click.command(short_help="Refresh connections before they expire.")
@click.option(
    "--interval",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between passes.",
)
@click.option(
    "--lead-time",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Refresh tokens expiring within this many seconds.",
)
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve Prometheus metrics on this port (127.0.0.1; see --metrics-host).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Metrics address.")
@click.pass_context
@plain_errors
def worker(
    context: click.Context,
    interval: float,
    lead_time: float,
    once: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Refresh connections before they expire; safe to run on several hosts. Stops on SIGTERM."""
    from oauthvault.worker import run_worker

    logging.getLogger("oauthvault.refresher").setLevel(logging.INFO)
    done = run_worker(
        load_settings(context),
        interval=interval,
        lead_time=lead_time,
        once=once,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    if done is not None:
        click.echo(f"{len(done.refreshed)} fresh, {len(done.failed)} failed")
        sys.exit(1 if done.failed else 0)
