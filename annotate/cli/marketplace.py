"""`annotate marketplace serve`: run the embedded MTurk-compatible marketplace."""

from __future__ import annotations

import os
from pathlib import Path

import click

from annotate.errors import UserError


def load_gold(batch_dir: str) -> dict[str, str]:
    """RequesterAnnotation -> gold label, from a batch's hidden gold column."""
    from annotate.config import load_batch  # lazily: config is its own part of annotate

    return dict(load_batch(batch_dir).gold_annotations())


@click.group("marketplace")
def marketplace() -> None:
    """The embedded MTurk-compatible marketplace (requester API + worker pages)."""


@marketplace.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8940, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="Marketplace database [default: marketplace.db in the annotate home].")
@click.option("--crowd", type=click.Choice(["none", "simulated", "replay"]), default="none", show_default=True,
              help="Let simulated workers (or a replayed dataset's workers) do the HITs as they appear.")
@click.option("--gold-from", "gold_from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Batch directory whose gold column tells the simulated crowd the true labels.")
@click.option("--answers", "answers_csv", type=click.Path(exists=True, dir_okay=False), default=None,
              help="answers.csv (item,worker,label) for --crowd replay.")
@click.option("--annotation-prefix", default="", show_default=False,
              help="Replay: an item's HITs carry RequesterAnnotation PREFIX + item id (e.g. 'rte/').")
@click.option("--mode", type=click.Choice(["sandbox", "production"]), default="sandbox", show_default=True,
              help="sandbox: the fixed $10,000.00 balance; production: HITs and bonuses are debited (fees, Masters "
                   "+5%) and GetAccountBalance reports OnHoldBalance.")
@click.option("--faults", default=None, metavar="SPEC",
              help="Inject faults into the requester API, e.g. latency=0.02,throttle=0.1,error=0.02,drop=0.02,seed=7, "
                   "or MTurk's rate limit as a token bucket: rate=5/s,burst=10 [env ANNOTATE_MARKETPLACE_FAULTS].")
@click.option("--media-root", "media_roots", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Serve the files under DIR at /media/<n>/<path> (n counts the roots from 0); repeatable.")
@click.option("--layout", "layout_specs", multiple=True, metavar="ID=FILE",
              help="Register a HIT layout for CreateHIT's HITLayoutId: FILE holds its HTML with ${name} "
                   "placeholders; repeatable.")
@click.option("--notification-endpoint", default=None, metavar="URL",
              help="Send HIT event notifications (SQS/SNS) to this endpoint instead of the one the queue URL names "
                   "[env ANNOTATE_MARKETPLACE_NOTIFICATION_ENDPOINT].")
@click.option("--workers", default=30, show_default=True, type=click.IntRange(1, 100000), help="Simulated workers.")
@click.option("--spammers", default=0.1, show_default=True, type=click.FloatRange(0, 1),
              help="Share of simulated workers who answer at random.")
@click.option("--locales", default="US=1", show_default=True, metavar="CC=SHARE,...",
              help="Simulated workers' countries (the Worker_Locale qualification), e.g. US=0.8,IN=0.2.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the simulated crowd.")
@click.option("--fill-to", "fill_to", type=click.IntRange(1, None), default=None, metavar="N",
              help="With --crowd simulated: only top up what people leave, to N assignments a HIT, taking slots "
                   "that stood open for --fill-after seconds (so a person alone can finish multi-assignment HITs).")
@click.option("--fill-after", "fill_after", type=click.FloatRange(0, None), default=30.0, show_default=True,
              metavar="SECONDS", help="How long a HIT's open slots wait for people before --fill-to tops them up.")
@click.option("--verbose", is_flag=True, help="Log every request to stderr.")
@click.pass_obj
def serve(workspace, host: str, port: int, db_path: str | None, crowd: str, gold_from: str | None,
          answers_csv: str | None, annotation_prefix: str, mode: str, faults: str | None, media_roots: tuple[str, ...],
          layout_specs: tuple[str, ...], notification_endpoint: str | None, workers: int, spammers: float, locales: str,
          seed: int, fill_to: int | None, fill_after: float, verbose: bool) -> None:
    """Serve the marketplace until Ctrl-C (SIGINT) or SIGTERM."""
    from annotate.interrupt import stop_on_signals
    from annotate.marketplace import MarketplaceServer
    from annotate.marketplace.crowd import HTTPCrowd, SimulatedCrowd, parse_locales
    from annotate.marketplace.faults import ENV_VAR, FaultSpec
    from annotate.marketplace.replay import ReplayCrowd, ReplayError

    if gold_from and crowd != "simulated":
        raise UserError("--gold-from needs --crowd simulated", field="--gold-from")
    if fill_to is not None and crowd != "simulated":
        raise UserError("--fill-to needs --crowd simulated", field="--fill-to")
    if (answers_csv is not None) != (crowd == "replay"):
        raise UserError("--crowd replay and --answers go together", field="--answers")
    source = "--faults" if faults is not None else ENV_VAR
    try:
        spec = FaultSpec.parse(faults if faults is not None else os.environ.get(ENV_VAR, ""))
    except ValueError as exc:
        raise UserError(str(exc), field=source) from None
    try:
        shares = parse_locales(locales)
    except ValueError as exc:
        raise UserError(str(exc), field="--locales") from None
    hit_layouts = _read_layouts(layout_specs)
    if notification_endpoint is not None and not notification_endpoint.startswith(("http://", "https://")):
        raise UserError(f"{notification_endpoint!r} is not an http(s) URL", field="--notification-endpoint")
    path = Path(db_path) if db_path else workspace.ensure().marketplace_db
    # Ctrl-C, `kill -INT` and `kill` (SIGTERM) all stop the server, also when it runs as a script's
    # background job (which starts with SIGINT ignored). Installed before the port listens, so a
    # signal from whoever saw it listen is never lost; a second signal waits for the cleanup.
    with stop_on_signals():
        try:
            srv = MarketplaceServer(path, host=host, port=port, verbose=verbose, faults=spec, media_roots=media_roots,
                                    hit_layouts=hit_layouts, notification_endpoint=notification_endpoint, mode=mode)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="--port") from None
        except ValueError as exc:  # a --media-root that may not be one: /, a system directory
            raise UserError(str(exc), field="--media-root") from None
        simulated: HTTPCrowd | None = None
        try:
            gold = load_gold(gold_from) if gold_from else {}
            click.echo(f"requester endpoint: {srv.url}")
            click.echo(f"worker pages:       {srv.worker_url}")
            click.echo(f"database:           {path}")
            click.echo(f"mode:               {mode}")
            if spec.active:
                click.echo(f"faults:             {spec}")
            for index, root in enumerate(srv.media.roots):
                click.echo(f"media:              {srv.url}/media/{index}/ -> {root}")
            for layout_id, file in zip(hit_layouts, layout_specs):
                click.echo(f"HIT layout:         {layout_id} <- {file.partition('=')[2]}")
            if srv.deliverer.endpoint_url:
                click.echo(f"notifications to:   {srv.deliverer.endpoint_url}")
            if crowd == "simulated":
                simulated = SimulatedCrowd(srv.url, gold, workers=workers, spammer_share=spammers, seed=seed,
                                           locales=shares, fill_to=fill_to, fill_after=fill_after)
                click.echo(f"simulated crowd:    {workers} workers, {spammers:.0%} spammers, "
                           f"{len(gold)} gold labels, seed {seed}, locales {locales}")
                if fill_to is not None:
                    click.echo(f"crowd tops up:      to {fill_to} assignment(s) a HIT, slots open {fill_after:g} s")
            elif crowd == "replay":
                assert answers_csv is not None
                try:
                    simulated = ReplayCrowd.from_csv(srv.url, answers_csv, lambda item: annotation_prefix + item,
                                                     seed=seed)
                except ReplayError as exc:
                    raise UserError(str(exc), file=answers_csv) from None
                click.echo(f"replay crowd:       {answers_csv}, annotations {annotation_prefix}<item>, seed {seed}")
            if simulated is not None:
                simulated.start()  # the socket already listens; requests wait for serve_forever
            srv.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopping")
        finally:
            if simulated is not None:
                simulated.stop()
            srv.stop()


def _read_layouts(specs: tuple[str, ...]) -> dict[str, str]:
    """--layout ID=FILE flags as {id: content}, every one checked before the server starts."""
    from annotate.marketplace import layouts

    found: dict[str, str] = {}
    for spec in specs:
        try:
            layout_id, file = layouts.parse_spec(spec)
        except ValueError as exc:
            raise UserError(str(exc), field="--layout") from None
        try:
            content = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the layout: {exc}", file=str(file), field="--layout") from None
        try:
            layouts.check_layout(layout_id, content)
        except ValueError as exc:
            raise UserError(str(exc), file=str(file), field="--layout") from None
        if layout_id in found:
            raise UserError(f"layout {layout_id} is given twice", field="--layout")
        found[layout_id] = content
    return found


commands = [marketplace]
