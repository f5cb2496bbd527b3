"""`clipseek serve`: the web page and HTTP API over a gallery database."""

from __future__ import annotations

from typing import List, Optional

import typer

from clipseek.cli.app import app
from clipseek.cli.fit_cmd import (
    classifier_option,
    coverage_option,
    examples_option,
    false_alarm_option,
    method_option,
)
from clipseek.cli.options import backend_option, device_option, finite, max_pixels_option, model_option
from clipseek.cli.output import eprint


@app.command("serve")
def serve_cmd(
    db: str = typer.Option("clipseek.db", "--db", help="Gallery database (SQLite). Default: ./clipseek.db"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Default: this machine only."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    model: Optional[str] = model_option("Default: the model the DB was built with."),
    token: Optional[str] = typer.Option(None, "--token", envvar="CLIPSEEK_TOKEN",
                                        help="Require 'Authorization: Bearer TOKEN' on every API "
                                             "call (also read from $CLIPSEEK_TOKEN). Open the page "
                                             "once as /?token=TOKEN. Needed with a --host other "
                                             "machines can reach."),
    no_token: bool = typer.Option(False, "--no-token",
                                  help="Serve a --host other machines can reach without a token "
                                       "(a network you trust)."),
    allow_host: Optional[List[str]] = typer.Option(None, "--allow-host", metavar="NAME",
                                                   help="Also answer requests for Host NAME, e.g. the "
                                                        "name a reverse proxy forwards (repeatable)."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", metavar="SECONDS", callback=finite(0.1, 3600),
                                         help="Close a connection that has not sent a request's "
                                              "headers within SECONDS."),
    device: str = device_option(),
    int8_text: bool = typer.Option(False, "--int8-text",
                                   help="Quantize the text tower to int8 on CPU: ~3x faster text "
                                        "queries, cosine ~0.998 to the fp32 query vector."),
    max_pixels: Optional[int] = max_pixels_option(),
    watch: Optional[List[str]] = typer.Option(None, "--watch", metavar="DIR",
                                              help="Index DIR now and follow its changes while serving "
                                                   "(repeat for several folders)."),
    poll: bool = typer.Option(False, "--poll", help="With --watch: poll instead of file events."),
    poll_interval: float = typer.Option(2.0, "--poll-interval", callback=finite(0.05, 3600),
                                        help="Seconds between polls."),
    backend: str = backend_option(),
    examples: Optional[str] = examples_option(),
    classifier: Optional[str] = classifier_option(),
    method: str = method_option(),
    coverage: Optional[float] = coverage_option(),
    false_alarm: Optional[float] = false_alarm_option(),
) -> int:
    """Search and classify in a web page at http://HOST:PORT/ (API schema at /openapi.json). With
    --examples DIR or --classifier FILE, POST /api/classify/examples classifies by example pictures too."""
    from clipseek.cli.fit_cmd import check_example_options
    from clipseek.model.spec import ModelSpec
    from clipseek.server import serve

    check_example_options(bool(examples or classifier), method, coverage, false_alarm)
    fitted = None
    if examples or classifier:
        from clipseek.cli.fit_cmd import fitted_for_serve

        fitted = fitted_for_serve(examples, classifier, method, coverage, false_alarm)

    watching = None
    if watch:
        from clipseek.cli.watching import serve_watch_options

        watching = serve_watch_options(watch, poll, poll_interval)
    serve(db, host=host, port=port, spec=ModelSpec(model, device, backend=backend, int8_text=int8_text),
          token=token, max_pixels=max_pixels, watch=watching, allow_hosts=allow_host or (),
          no_token=no_token, header_timeout=header_timeout, announce=lambda line: eprint(f"clipseek: {line}"),
          classifier=fitted)
    return 0
