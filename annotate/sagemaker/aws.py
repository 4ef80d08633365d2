"""Training on SageMaker: plan (pure: the uploads and the CreateTrainingJob body), then run.

`plan_training` checks everything a user can get wrong — algorithm, labelled items, the
label attribute, features, role, credentials — before a byte is uploaded, and is what
`--dry-run` prints. `run_training` uploads, creates the job and waits.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from annotate.errors import UserError
from annotate.sagemaker import requests as rq
from annotate.sagemaker.algorithms import check_task_type
from annotate.sagemaker.data import export_path, export_value, read_manifest, summarise_csv, summarise_manifest
from annotate.sagemaker.local import TrainingFailed, TrainingResult, save_job
from annotate.sagemaker.settings import (BUILTINS, DEFAULT_ALGORITHM, DEFAULT_BUILTIN_INSTANCE,
                                         DEFAULT_FRAMEWORK_INSTANCE, FRAMEWORKS, TrainingSettings,
                                         check_algorithm, training_dir)

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/.+$")
TERMINAL = {"Completed", "Failed", "Stopped"}


@dataclass
class Upload:
    """One object to put in S3: a local file, or bytes annotate generates (a rewritten manifest)."""

    destination: str
    path: Path | None = None
    body: bytes | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        source = str(self.path) if self.path else f"<generated: {self.description}, {len(self.body or b'')} bytes>"
        return {"source": source, "destination": self.destination}

    def read(self) -> bytes:
        return self.body if self.body is not None else Path(self.path).read_bytes()


@dataclass
class TrainingPlan:
    algorithm: str
    region: str
    request: dict[str, Any]
    uploads: list[Upload] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    label_attribute: str | None = None
    batch: str | None = None

    @property
    def job_name(self) -> str:
        return self.request["TrainingJobName"]

    def to_dict(self) -> dict[str, Any]:
        return {"target": "aws", "algorithm": self.algorithm, "region": self.region,
                "uploads": [u.to_dict() for u in self.uploads],
                "requests": [{"service": "sagemaker", "operation": "CreateTrainingJob", "body": self.request}]}


@contextmanager
def aws_errors(doing: str):
    """Any error AWS (or botocore, before sending) reports becomes a UserError saying what was
    being done and what AWS said: exit 2 with a message, never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), error.get("Message", str(exc))
        if code == "ModelError":  # InvokeEndpoint: the model container failed on the input
            original = exc.response.get("OriginalMessage") or message
            raise UserError(f"{doing}: the model could not answer (ModelError, status "
                            f"{exc.response.get('OriginalStatusCode', '?')}): {original}") from None
        raise UserError(f"{doing}: AWS said {code}: {message}") from None
    except BotoCoreError as exc:
        raise UserError(f"{doing}: {exc}") from None


def session_region(session) -> str:
    region = session.region_name
    if not region:
        raise UserError("no AWS region: set AWS_DEFAULT_REGION or pass --region", field="region")
    return region


def require_credentials(session) -> None:
    """No credentials means nothing can be sent: say so before anything starts."""
    if session.get_credentials() is None:
        raise UserError("no AWS credentials found: configure them (aws configure, AWS_PROFILE or "
                        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or use --target local")


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise UserError(f"not an S3 URI: {uri}", field="s3_prefix")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key.strip("/")


def default_s3_prefix(region: str, role_arn: str) -> str:
    """The SageMaker SDK's default bucket, sagemaker-<region>-<account>; the account is the role's."""
    account = ROLE_ARN.match(role_arn).group(1)
    return f"s3://sagemaker-{region}-{account}/annotate"


def plan_training(export: Any, settings: TrainingSettings | dict, *, region: str, algorithm: str | None = None,
                  batch: str = "batch", job: str | None = None, role_arn: str | None = None,
                  s3_prefix: str | None = None, instance_type: str | None = None) -> TrainingPlan:
    """The uploads and CreateTrainingJob body for an export; raises UserError on bad input."""
    if isinstance(settings, dict):
        settings = TrainingSettings.from_config(settings)
    algorithm = check_algorithm(algorithm or settings.algorithm or DEFAULT_ALGORITHM)
    role_arn = role_arn or settings.role_arn
    if not role_arn:
        raise UserError("SageMaker needs an execution role: set [training] role_arn or pass --role-arn",
                        field="training.role_arn")
    if not ROLE_ARN.match(role_arn):
        raise UserError(f"not an IAM role ARN: {role_arn}", field="training.role_arn")
    prefix = (s3_prefix or settings.s3_prefix or default_s3_prefix(region, role_arn)).rstrip("/")
    bucket, key = split_s3(prefix)
    name = job or rq.job_name(batch, algorithm)
    base = f"s3://{bucket}/{key + '/' if key else ''}{name}"
    output_uri = f"{base}/output"
    labels = list(export_value(export, "labels", []))
    label_attribute = export_value(export, "label_attribute")

    if algorithm in BUILTINS:
        if not label_attribute:
            raise UserError("the export names no label attribute", field="label_attribute")
        train_manifest = export_path(export, "train_manifest") or export_path(export, "manifest")
        if train_manifest is None:
            raise UserError("the export has no augmented manifest: export with the manifest format first")
        validation_manifest = export_path(export, "validation_manifest")
        train = summarise_manifest(train_manifest, label_attribute, algorithm)
        check_task_type(algorithm, train.task_type, file=str(train_manifest), line=1)
        validation = (summarise_manifest(validation_manifest, label_attribute, algorithm)
                      if validation_manifest else None)
        if validation:
            check_task_type(algorithm, validation.task_type, file=str(validation_manifest), line=1)
        classes = labels or [train.class_names[i] for i in sorted(train.class_names)]
        if algorithm == "semantic-segmentation":
            # Mask pixels hold 0 (background) to len(labels): the algorithm counts background as a class.
            names = {**train.class_names, **(validation.class_names if validation else {})}
            if labels and not any(str(label).upper() == "BACKGROUND" for label in labels):
                classes = ["BACKGROUND", *labels]
            if len(names) > len(classes):
                classes = [names[i] for i in sorted(names)]
        if not classes:
            raise UserError("cannot tell the number of classes: the export lists no labels", field="labels")
        uploads, uris = [], {}
        files: dict[str, str] = {}
        sizes: list[tuple[int, int]] | None = []
        for channel, path in (("train", train_manifest), ("validation", validation_manifest)):
            if path is None:
                continue
            body, channel_sizes = _rewrite_local_refs(path, f"{base}/files", files, uploads,
                                                      measure=algorithm == "image-classification")
            # resize applies to both channels: every image counts (unseen ones make it unknown)
            sizes = None if sizes is None or channel_sizes is None else sizes + channel_sizes
            uri = f"{base}/input/{channel}.manifest"
            uploads.append(Upload(uri, path=None if body else path, body=body,
                                  description=f"{path.name} with local file references pointing to S3"))
            uris[channel] = uri
        # Files first, manifests last: a manifest never points at a missing object.
        uploads.sort(key=lambda u: u.destination.endswith(".manifest"))
        request = rq.builtin_training_request(
            name=name, algorithm=algorithm, region=region, role_arn=role_arn, output_uri=output_uri,
            train_manifest_uri=uris["train"], validation_manifest_uri=uris.get("validation"),
            attribute_names=train.attribute_names, num_classes=len(classes), num_training_samples=train.records,
            instance_type=instance_type or settings.instance_type or DEFAULT_BUILTIN_INSTANCE,
            hyperparameters=settings.hyperparameters_for(algorithm), image_sizes=sizes,
            num_validation_samples=validation.records if validation else None)
        return TrainingPlan(algorithm, region, request, uploads, classes, [], label_attribute, batch)

    train_csv = export_path(export, "train_csv") or export_path(export, "csv")
    if train_csv is None:
        raise UserError("the export has no CSV: export with the csv format first")
    validation_csv = export_path(export, "validation_csv")
    summary = summarise_csv(train_csv, settings.features)
    if summary.labelled_rows == 0:
        raise UserError("no labelled items to train on", file=str(train_csv))
    if validation_csv:
        summarise_csv(validation_csv, settings.features)
    rq.check_script_hyperparameters(algorithm, settings.hyperparameters_for(algorithm), training_dir())
    uploads = [Upload(f"{base}/input/train/train.csv", path=train_csv)]
    if validation_csv:
        uploads.append(Upload(f"{base}/input/validation/validation.csv", path=validation_csv))
    source_uri = f"{base}/source/sourcedir.tar.gz"
    uploads.append(Upload(source_uri, body=rq.source_tarball(training_dir()), description="training/ scripts"))
    request = rq.framework_training_request(
        name=name, algorithm=algorithm, region=region, role_arn=role_arn, output_uri=output_uri,
        train_uri=f"{base}/input/train/", validation_uri=f"{base}/input/validation/" if validation_csv else None,
        source_uri=source_uri, script_values=rq.script_hyperparameters(
            settings.features, labels, settings.hyperparameters_for(algorithm)),
        instance_type=instance_type or settings.instance_type or DEFAULT_FRAMEWORK_INSTANCE)
    return TrainingPlan(algorithm, region, request, uploads, labels, list(settings.features), label_attribute, batch)


def _rewrite_local_refs(path: Path, files_uri: str, files: dict[str, str], uploads: list[Upload], *,
                        measure: bool = False) -> tuple[bytes | None, list[tuple[int, int]] | None]:
    """SageMaker reads only S3: plan the upload of every local file a manifest line references
    (`source-ref` and each `<attribute>-ref`, e.g. a segmentation mask) and return the manifest
    pointing at S3 (None if it already did), with the images' (width, height) when `measure`
    (None when some image is in S3 and unseen)."""
    lines, changed = [], False
    sizes: list[tuple[int, int]] | None = [] if measure else None
    for number, record in read_manifest(path):
        record = dict(record)
        for key, ref in list(record.items()):
            if not key.endswith("-ref") or not isinstance(ref, str):
                continue
            if ref.startswith("s3://"):
                if key == "source-ref":
                    sizes = None
                continue
            local = (path.parent / ref) if not Path(ref).is_absolute() else Path(ref)
            if not local.is_file():
                raise UserError(f"{key} file not found: {ref}", file=str(path), line=number, field=key)
            if str(local) not in files:
                digest = hashlib.sha1(str(local.resolve()).encode()).hexdigest()[:8]
                files[str(local)] = f"{files_uri}/{digest}-{local.name}"
                uploads.append(Upload(files[str(local)], path=local))
            if key == "source-ref" and sizes is not None:
                sizes.append(_image_size(local, path, number))
            record[key] = files[str(local)]
            changed = True
        lines.append(json.dumps(record))
    return (("\n".join(lines) + "\n").encode() if changed else None), (sizes or None)


def _image_size(image: Path, manifest: Path, line: int) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as opened:  # reads the header only
            return opened.size
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"source-ref is not a readable image: {image} ({exc})", file=str(manifest), line=line,
                        field="source-ref") from None


def upload(plan: TrainingPlan, s3_client, *, create_default_bucket: bool = True) -> None:
    for item in plan.uploads:
        bucket, key = split_s3(item.destination)
        if create_default_bucket and bucket.startswith("sagemaker-"):
            _ensure_bucket(s3_client, bucket, plan.region)
            create_default_bucket = False
        s3_client.put_object(Bucket=bucket, Key=key, Body=item.read())


def _ensure_bucket(s3_client, bucket: str, region: str) -> None:
    """Create the SDK-style default bucket on first use, as the SageMaker SDK does."""
    from botocore.exceptions import ClientError

    try:
        s3_client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3_client.create_bucket(Bucket=bucket, **kwargs)


def wait_for_training(sagemaker_client, name: str, *, poll: float = 30.0, timeout: float | None = None,
                      progress: Callable[[dict[str, Any]], None] | None = None,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll DescribeTrainingJob until the job ends; progress gets each description (with
    `ElapsedSeconds` added). Past `timeout` seconds: a UserError — the job itself runs on."""
    started = clock()
    while True:
        with aws_errors(f"DescribeTrainingJob {name}"):
            description = sagemaker_client.describe_training_job(TrainingJobName=name)
        elapsed = clock() - started
        if progress:
            progress({**description, "ElapsedSeconds": round(elapsed)})
        if description["TrainingJobStatus"] in TERMINAL:
            return description
        if timeout is not None and elapsed + poll > timeout:
            raise UserError(f"training job {name} is still {description['TrainingJobStatus']} "
                            f"({description.get('SecondaryStatus', '')}) after {elapsed:.0f} s; it keeps running: "
                            f"aws sagemaker describe-training-job --training-job-name {name}", field="timeout")
        sleep(poll)


def run_training(plan: TrainingPlan, session, home: Path | None = None, *, wait: bool = True,
                 poll: float = 30.0, timeout: float | None = None,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> TrainingResult:
    """Upload, CreateTrainingJob, and (by default) wait — at most `timeout` seconds (default: the
    job's own MaxRuntimeInSeconds plus an hour). Raises TrainingFailed with FailureReason."""
    require_credentials(session)
    with aws_errors(f"uploading the data of {plan.job_name}"):
        upload(plan, session.client("s3", region_name=plan.region))
    sagemaker = session.client("sagemaker", region_name=plan.region)
    with aws_errors(f"CreateTrainingJob {plan.job_name}"):
        sagemaker.create_training_job(**plan.request)
    result = TrainingResult(job_name=plan.job_name, algorithm=plan.algorithm, target="aws", labels=plan.labels,
                            features=plan.features, label_attribute=plan.label_attribute, region=plan.region,
                            program=FRAMEWORKS.get(plan.algorithm), status="InProgress", batch=plan.batch,
                            source_dir=rq.decode_hyperparameters(plan.request["HyperParameters"])
                            .get("sagemaker_submit_directory"))
    if home is not None:
        save_job(home, result)
    if not wait:
        return result
    if timeout is None:
        timeout = plan.request["StoppingCondition"]["MaxRuntimeInSeconds"] + 3600
    description = wait_for_training(sagemaker, plan.job_name, poll=poll, timeout=timeout, progress=progress)
    result.status = description["TrainingJobStatus"]
    result.model_artifact = description.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    result.metrics = {m["MetricName"]: float(m["Value"]) for m in description.get("FinalMetricDataList", [])}
    if home is not None:
        save_job(home, result)
    if result.status != "Completed":
        raise TrainingFailed(f"training job {plan.job_name} {result.status.lower()}: "
                             f"{description.get('FailureReason', 'no reason given')}")
    return result
