"""annotate train | deploy | predict | teardown: thin click commands over annotate.sagemaker."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from annotate.cli._common import console, emit_json, json_option, wait_bar, yes_option
from annotate.errors import UserError
from annotate.sagemaker import (ALGORITHMS, TrainingFailed, batch_training_settings, deploy_aws, deploy_local,
                                latest_job, plan_training, predict, prepare_deploy_aws, run_training, teardown,
                                teardown_steps, train_local)

where_option = click.option("--target", type=click.Choice(["local", "aws"]), default="local", show_default=True,
                            help="Where it runs: local (this machine) or aws (SageMaker).")
region_option = click.option("--region", default=None, help="AWS region [default: from the AWS configuration].")
dry_run_option = click.option("--dry-run", is_flag=True, help="Print the requests it would send; send nothing.")


_ERR = console(stderr=True)


def _console():
    return _ERR.get()


def _session(region: str | None):
    import boto3

    session = boto3.Session(region_name=region) if region else boto3.Session()
    if not session.region_name:
        raise UserError("no AWS region: pass --region or set AWS_DEFAULT_REGION", field="region")
    return session


def _aws_ready(region: str | None, role_arn: str | None, *, credentials: bool):
    """The boto3 session for a SageMaker job, once every setting it needs is there: all that are
    missing are named in one error (before exporting or uploading anything)."""
    import boto3

    session = boto3.Session(region_name=region) if region else boto3.Session()
    missing = []
    if not session.region_name:
        missing.append("no AWS region (pass --region or set AWS_DEFAULT_REGION)")
    if not role_arn:
        missing.append("no execution role (set [training] role_arn in batch.toml or pass --role-arn)")
    if credentials and session.get_credentials() is None:
        missing.append("no AWS credentials found (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; "
                       "or use --target local)")
    if missing:
        raise UserError("a SageMaker job needs what is missing here: " + "; ".join(missing), field="--target aws")
    return session


def _export(ws, batch: str, split: float, seed: int):
    """The batch's labels as CSV + augmented manifest with a train/validation split (annotate.export)."""
    try:
        from annotate.export import export_batch
    except ImportError as exc:
        raise UserError(f"cannot export batch '{batch}': annotate.export is unavailable ({exc})") from exc
    export = export_batch(ws, batch, ws.exports, formats=("manifest", "csv"), split=split, seed=seed)
    if not export.n_items:
        raise UserError(f"batch '{batch}' has no labelled items yet: harvest first", field="batch")
    return export


def _settings(ws, batch: str):
    return batch_training_settings(ws, batch)


def _progress(status):
    def show(description: dict) -> None:
        state = description.get("TrainingJobStatus") or description.get("EndpointStatus")
        detail = description.get("SecondaryStatus", "")
        elapsed = description.get("ElapsedSeconds")
        status.update(f"{description.get('TrainingJobName') or description.get('EndpointName')}: {state}"
                      + (f" ({detail})" if detail and detail != state else "")
                      + (f", {elapsed // 60:.0f} min {elapsed % 60:02.0f} s" if elapsed is not None else ""))
    return show


@click.command("train")
@click.argument("batch")
@where_option
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default=None,
              help="Default: [training] algorithm in batch.toml, else sklearn.")
@click.option("--job", default=None, help="Training job name [default: <batch>-<algorithm>-<timestamp>].")
@click.option("--split", type=float, default=0.8, show_default=True, help="Share of items for training.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/validation split.")
@click.option("--role-arn", default=None, help="SageMaker execution role (aws) [default: [training] role_arn].")
@click.option("--s3-prefix", default=None, help="s3://bucket/prefix for data and model (aws).")
@click.option("--instance-type", default=None, help="Training instance (aws).")
@click.option("--no-wait", is_flag=True, help="Return once the job is created (aws).")
@click.option("--timeout", type=float, default=None,
              help="Stop waiting after this many seconds; the job runs on (aws) [default: its max runtime + 1 h].")
@region_option
@dry_run_option
@json_option
@click.pass_obj
def train_command(ws, batch, target, algorithm, job, split, seed, role_arn, s3_prefix, instance_type, no_wait,
                  timeout, region, dry_run, as_json):
    """Train a model on BATCH's labels: locally (default) or as a SageMaker training job."""
    console = _console()
    settings = _settings(ws, batch)
    if target == "aws":
        session = _aws_ready(region, role_arn or settings.role_arn, credentials=not dry_run)
    export = _export(ws, batch, split, seed)
    if target == "local":
        if dry_run:
            raise UserError("--dry-run shows SageMaker requests: use it with --target aws", field="dry_run")
        with wait_bar(_ERR, f"training {batch} locally", not as_json):
            result = train_local(ws.home, export, settings, algorithm=algorithm, batch=batch, job=job,
                                 echo=None if as_json else click.echo)
    else:
        plan_region = region or session.region_name
        plan = plan_training(export, settings, region=plan_region, algorithm=algorithm, batch=batch, job=job,
                             role_arn=role_arn, s3_prefix=s3_prefix, instance_type=instance_type)
        if dry_run:
            if as_json:
                emit_json({"dry_run": True, **plan.to_dict()})
            else:
                for upload in plan.uploads:
                    click.echo(f"upload {upload.to_dict()['source']} -> {upload.destination}")
                click.echo(f"CreateTrainingJob {plan.job_name} ({plan.request['AlgorithmSpecification']['TrainingImage']})")
            return
        with wait_bar(_ERR, f"{plan.job_name}: uploading", not as_json) as status:
            try:
                result = run_training(plan, session, ws.home, wait=not no_wait, timeout=timeout,
                                      progress=_progress(status))
            except TrainingFailed as exc:
                console.print(f"[red]{exc}[/red]")
                raise click.exceptions.Exit(1) from exc
    if as_json:
        emit_json(result.to_dict())
        return
    accuracy = result.model_accuracy
    click.echo(f"job {result.job_name}: {result.status}"
               + (f", validation accuracy {accuracy:.4f}" if accuracy is not None else ""))
    if result.model_artifact:
        click.echo(f"model: {result.model_artifact}")


@click.command("deploy")
@click.argument("job", required=False)
@where_option
@click.option("--name", default=None,
              help="Endpoint name [default: the job name locally; <job>-<time> on SageMaker, new each deployment].")
@click.option("--instance-type", default=None, help="Real-time endpoint instance (aws) [default ml.m5.large].")
@click.option("--serverless-memory", type=int, default=None, help="Serverless endpoint memory in MB (aws).")
@click.option("--max-concurrency", type=int, default=None, help="Serverless max concurrency (aws).")
@click.option("--port", type=int, default=0, help="Local port [default: a free one; 8080 in the foreground].")
@click.option("--background", is_flag=True, help="Local: serve in the background (teardown stops it).")
@click.option("--no-wait", is_flag=True, help="Return once the endpoint is being created (aws).")
@click.option("--timeout", type=float, default=3600.0, show_default=True,
              help="Stop waiting for InService after this many seconds (aws).")
@region_option
@dry_run_option
@json_option
@click.pass_obj
def deploy_command(ws, job, target, name, instance_type, serverless_memory, max_concurrency, port, background,
                   no_wait, timeout, region, dry_run, as_json):
    """Serve JOB's model (default: the latest trained job) as an endpoint."""
    job = job or latest_job(ws.home)
    if target == "local":
        if dry_run:
            raise UserError("--dry-run shows SageMaker requests: use it with --target aws", field="dry_run")
        if not background:
            def ready(record):
                click.echo(f"serving {record['job']} at {record['url']} (/ping, /invocations); Ctrl-C stops")
            deploy_local(ws.home, job, name=name, port=port, background=False, ready=ready)
            return
        with wait_bar(_ERR, f"{name or job}: starting the local endpoint", not as_json):
            record = deploy_local(ws.home, job, name=name, port=port, background=True)
    else:
        session = _session(region)
        plan = prepare_deploy_aws(ws.home, session, job, name=name, instance_type=instance_type,
                                  serverless_memory=serverless_memory, max_concurrency=max_concurrency)
        if dry_run:
            if as_json:
                emit_json({"dry_run": True, **plan.to_dict()})
            else:
                for request in plan.requests:
                    click.echo(f"{request['operation']} {next(iter(request['body'].values()))}")
            return
        with wait_bar(_ERR, f"{plan.name}: creating", not as_json) as status:
            record = deploy_aws(ws.home, session, plan, wait=not no_wait, timeout=timeout, progress=_progress(status))
    if as_json:
        emit_json(record)
    else:
        where = record.get("url") or f"{record['region']} ({record['status']})"
        click.echo(f"endpoint {record['name']}: {where}")


@click.command("predict")
@click.argument("endpoint")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--target", type=click.Choice(["local", "aws"]), default=None,
              help="Default: where the endpoint was deployed.")
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Object detection: count boxes scoring at least this.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write images with boxes / masks here [default: <home>/predictions].")
@click.option("--to-batch", "to_batch", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the items the model is unsure of (score < --below) as a new batch folder here, "
                   "for the crowd: the trained batch's settings, these items only.")
@click.option("--below", type=float, default=0.9, show_default=True, help="With --to-batch: 'unsure' means below this.")
@click.option("--from-batch", default=None, help="With --to-batch: the batch whose settings to reuse "
                                                 "[default: the one the model was trained on].")
@region_option
@json_option
@click.pass_obj
def predict_command(ws, endpoint, inputs, target, threshold, out_dir, to_batch, below, from_batch, region, as_json):
    """Ask ENDPOINT about each INPUT (an image, a CSV/JSON file such as an export, or an inline CSV row)."""
    from annotate.sagemaker.endpoint import load_record

    record = load_record(ws.home, endpoint) or {}
    session = None
    if (target or record.get("target") or "aws") == "aws":
        session = _session(region or record.get("region"))
    if to_batch is not None:
        source = _review_source(ws, record, from_batch)
    results = predict(ws.home, endpoint, list(inputs), target=target, session=session, threshold=threshold,
                      out_dir=out_dir or ws.home / "predictions")
    review = None
    if to_batch is not None:
        from annotate.sagemaker.review import write_review_batch

        count = write_review_batch(source, to_batch, results, below=below)
        review = {"dir": str(to_batch) if count else None, "items": count, "below": below}
        click.echo(f"{count} of {len(results)} item(s) scored below {below}"
                   + (f": new batch in {to_batch} (annotate post {to_batch})" if count else ": no batch written"),
                   err=True)
    if as_json:
        emit_json({"endpoint": endpoint, "predictions": [r.to_dict() for r in results],
                   **({"review_batch": review} if review else {})})
        return
    table = Table(title=f"predictions from {endpoint}")
    detection = any(r.count is not None for r in results)
    table.add_column("input", overflow="fold")
    if detection:
        table.add_column(f"objects ≥ {threshold}", justify="right")
        table.add_column("image with boxes", overflow="fold")
    else:
        table.add_column("label")
        table.add_column("score", justify="right")
    for r in results:
        if detection:
            table.add_row(r.input, str(r.count), r.output or "")
        else:
            table.add_row(r.input, str(r.label), "" if r.score is None else f"{r.score:.3f}")
    console().print(table)


def _review_source(ws, record: dict, from_batch: str | None) -> Path:
    """The folder of the batch whose settings a review batch reuses."""
    from annotate.sagemaker.local import jobs_dir, load_job
    from annotate.store import Store

    name = from_batch
    job = record.get("job")
    store = Store(ws.store_path)
    if name is None and job and (jobs_dir(ws.home) / job / "job.json").exists():
        name = load_job(ws.home, job).batch
    if name is None and job:  # jobs recorded before they named their batch: <batch>-<algorithm>-…
        name = max((b for b in store.batch_names() if job.startswith(f"{b}-")), key=len, default=None)
    if not name:
        raise UserError("cannot tell which batch the model learned from: pass --from-batch NAME", field="from_batch")
    batch = store.get_batch(name)
    if batch is None or not batch.get("dir"):
        raise UserError(f"no batch named {name!r} in this home", field="from_batch")
    return Path(batch["dir"])


@click.command("teardown")
@click.argument("endpoint", required=False)
@click.option("--target", type=click.Choice(["local", "aws"]), default=None,
              help="Default: where the endpoint was deployed.")
@click.option("--batch", "batches", multiple=True, help="Also expire this batch's HITs still open to workers (repeatable).")
@click.option("--production", is_flag=True, help="The batches are on MTurk production (required to touch them there).")
@region_option
@yes_option
@json_option
@click.pass_obj
def teardown_command(ws, endpoint, target, batches, production, region, yes, as_json):
    """Delete ENDPOINT with its endpoint config and model (aws), or stop the local endpoint; with
    --batch, also expire the batch's leftover HITs, so nothing keeps billing or taking work."""
    from annotate.cleanup import expire_leftover_hits, open_hits
    from annotate.sagemaker.deploy import TeardownStep
    from annotate.sagemaker.endpoint import load_record
    from annotate.store import Store

    if not endpoint and not batches:
        raise UserError("name an ENDPOINT, a --batch, or both", field="teardown")
    steps = []
    if endpoint:
        record = load_record(ws.home, endpoint) or {}
        where = target or record.get("target") or "aws"
        session = _session(region or record.get("region")) if where == "aws" else None
        steps = teardown_steps(ws.home, endpoint, session=session, target=where)
    store = Store(ws.store_path)
    for batch in batches:
        if store.get_batch(batch) is None:
            raise UserError(f"no batch named {batch!r}", field="--batch")
        n = len(open_hits(store, batch))
        steps.append(TeardownStep(
            f"expire {n} open HIT(s) of batch {batch}",
            lambda b=batch: expire_leftover_hits(ws, b, target="production" if production else None)))
    if not yes:
        if not sys.stdin.isatty():  # cron, a pipe: nobody to ask, and nothing removed unasked
            raise UserError("teardown removes " + "; ".join(s.description for s in steps)
                            + ": there is no terminal to confirm on, pass --yes", field="--yes")
        click.echo("This removes:")
        for step in steps:
            click.echo(f"  - {step.description}")
        if not click.confirm("Proceed?", default=False):
            click.echo("cancelled; nothing was removed", err=True)
            raise click.exceptions.Exit(1)
    gone = teardown(ws.home, endpoint, steps) if endpoint else [s.description for s in steps if s.run() is not False]
    if as_json:
        emit_json({"endpoint": endpoint, "removed": gone})
    else:
        for item in gone:
            click.echo(f"removed {item}")


commands = [train_command, deploy_command, predict_command, teardown_command]
