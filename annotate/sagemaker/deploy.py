"""Deploy a trained model (SageMaker endpoint or local server) and tear it down again."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from botocore.exceptions import ClientError

from annotate.errors import UserError
from annotate.sagemaker import endpoint as local_endpoint
from annotate.sagemaker.aws import aws_errors, require_credentials
from annotate.sagemaker.local import TrainingResult, jobs_dir, load_job
from annotate.sagemaker.settings import BUILTINS, DEFAULT_INFERENCE_INSTANCE, FRAMEWORKS, image_uri

SERVERLESS_MEMORY = (1024, 2048, 3072, 4096, 5120, 6144)
ENDPOINT_TERMINAL = {"InService", "Failed", "OutOfService"}


DEFAULT_DEPLOY_TIMEOUT = 3600.0  # endpoints usually come up in 5-15 minutes


def deployment_name(base: str, now: datetime | None = None) -> str:
    """<base>-<UTC time to the millisecond>: model, endpoint config and endpoint names cannot be
    reused while the old ones exist, so each deployment gets names of its own (≤ 63 characters)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    stem = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-") or "endpoint"
    return f"{stem[: 63 - len(stamp) - 1].rstrip('-')}-{stamp}"


@dataclass
class DeployPlan:
    name: str
    region: str
    job: str
    algorithm: str
    labels: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    endpoint_config: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"target": "aws", "endpoint": self.name, "model": self.model, "endpoint_config": self.endpoint_config,
                "region": self.region, "job": self.job, "requests": self.requests}


def _algorithm_of(description: dict[str, Any], local: TrainingResult | None) -> str:
    if local and local.algorithm:
        return local.algorithm
    image = description["AlgorithmSpecification"].get("TrainingImage", "")
    for algorithm in BUILTINS:
        if f"/{algorithm}:" in image:
            return algorithm
    if "scikit-learn" in image:
        return "sklearn"
    if "tensorflow" in image:
        return "tensorflow"
    raise UserError(f"cannot tell which algorithm trained '{description['TrainingJobName']}' (image {image})")


def plan_deploy(description: dict[str, Any], *, region: str, local: TrainingResult | None = None,
                name: str | None = None, role_arn: str | None = None, instance_type: str | None = None,
                serverless_memory: int | None = None, max_concurrency: int | None = None) -> DeployPlan:
    """CreateModel, CreateEndpointConfig and CreateEndpoint bodies for a completed training job."""
    job = description["TrainingJobName"]
    if description.get("TrainingJobStatus") != "Completed":
        raise UserError(f"training job '{job}' is {description.get('TrainingJobStatus')}, not Completed", field="job")
    if serverless_memory is not None and instance_type:
        raise UserError("choose an instance type or serverless memory, not both", field="serverless_memory")
    if serverless_memory is not None and serverless_memory not in SERVERLESS_MEMORY:
        raise UserError(f"serverless memory must be one of {', '.join(map(str, SERVERLESS_MEMORY))} MB",
                        field="serverless_memory")
    if max_concurrency is not None and serverless_memory is None:
        raise UserError("--max-concurrency applies to serverless endpoints (give --serverless-memory)",
                        field="max_concurrency")
    if max_concurrency is not None and not 1 <= max_concurrency <= 200:
        raise UserError("max concurrency must be between 1 and 200", field="max_concurrency")
    algorithm = _algorithm_of(description, local)
    unique = deployment_name(job)
    name = name or unique
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name) or len(name) > 63:
        raise UserError(f"endpoint name '{name}' must be 1-63 letters, digits and hyphens", field="name")
    model_name = config_name = unique
    hyperparameters = description.get("HyperParameters", {})
    container: dict[str, Any] = {"Image": image_uri(algorithm, region, scope="inference"),
                                 "ModelDataUrl": description["ModelArtifacts"]["S3ModelArtifacts"]}
    if algorithm == "sklearn":
        # The scikit-learn serving container imports the training script for its hooks.
        container["Environment"] = {
            "SAGEMAKER_PROGRAM": json.loads(hyperparameters.get("sagemaker_program", json.dumps(FRAMEWORKS[algorithm]))),
            "SAGEMAKER_SUBMIT_DIRECTORY": json.loads(hyperparameters["sagemaker_submit_directory"]),
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": region,
        }
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": model_name}
    if serverless_memory is not None:
        variant["ServerlessConfig"] = {"MemorySizeInMB": serverless_memory, "MaxConcurrency": max_concurrency or 5}
    else:
        variant.update({"InstanceType": instance_type or DEFAULT_INFERENCE_INSTANCE, "InitialInstanceCount": 1,
                        "InitialVariantWeight": 1.0})
    requests = [
        {"service": "sagemaker", "operation": "CreateModel",
         "body": {"ModelName": model_name, "ExecutionRoleArn": role_arn or description["RoleArn"],
                  "PrimaryContainer": container}},
        {"service": "sagemaker", "operation": "CreateEndpointConfig",
         "body": {"EndpointConfigName": config_name, "ProductionVariants": [variant]}},
        {"service": "sagemaker", "operation": "CreateEndpoint",
         "body": {"EndpointName": name, "EndpointConfigName": config_name}},
    ]
    return DeployPlan(name, region, job, algorithm, list(local.labels) if local else [], requests,
                      model=model_name, endpoint_config=config_name)


def _local_record(home: Path, job: str) -> TrainingResult | None:
    return load_job(home, job) if (jobs_dir(home) / job / "job.json").exists() else None


def prepare_deploy_aws(home: Path, session, job: str, **options) -> DeployPlan:
    """Describe the training job (read-only) and plan the endpoint; what --dry-run prints."""
    require_credentials(session)
    region = session.region_name
    client = session.client("sagemaker", region_name=region)
    with aws_errors(f"DescribeTrainingJob {job}"):
        try:
            description = client.describe_training_job(TrainingJobName=job)
        except ClientError as exc:  # SageMaker says ValidationException, not ResourceNotFound
            if not _missing(exc):
                raise
            raise UserError(f"no SageMaker training job named '{job}' in {region}", field="job") from None
    plan = plan_deploy(description, region=region, local=_local_record(home, job), **options)
    # The service refuses a second endpoint of the same name: say so before creating anything.
    with aws_errors(f"DescribeEndpoint {plan.name}"):
        try:
            existing = client.describe_endpoint(EndpointName=plan.name)
        except ClientError as exc:
            if not _missing(exc):
                raise
            existing = None
    if existing is not None:
        raise UserError(f"endpoint '{plan.name}' already exists ({existing.get('EndpointStatus')}): choose another "
                        f"--name, or `annotate teardown {plan.name}` first", field="name")
    return plan


def deploy_aws(home: Path, session, plan: DeployPlan, *, wait: bool = True, poll: float = 30.0,
               timeout: float = DEFAULT_DEPLOY_TIMEOUT, progress: Callable[[dict[str, Any]], None] | None = None,
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Send the plan's requests, record the endpoint, and wait (at most `timeout` s) until InService."""
    client = session.client("sagemaker", region_name=plan.region)
    record = {"name": plan.name, "target": "aws", "region": plan.region, "job": plan.job,
              "algorithm": plan.algorithm, "labels": plan.labels, "model": plan.model or plan.name,
              "endpoint_config": plan.endpoint_config or plan.name, "endpoint": plan.name, "status": "Creating"}
    # Record intent first: a crash between calls still leaves teardown knowing what to delete.
    local_endpoint.save_record(home, record)
    for request in plan.requests:
        method = {"CreateModel": client.create_model, "CreateEndpointConfig": client.create_endpoint_config,
                  "CreateEndpoint": client.create_endpoint}[request["operation"]]
        with aws_errors(f"{request['operation']} {next(iter(request['body'].values()))}"):
            method(**request["body"])
    if wait:
        started = clock()
        while True:
            with aws_errors(f"DescribeEndpoint {plan.name}"):
                description = client.describe_endpoint(EndpointName=plan.name)
            elapsed = clock() - started
            if progress:
                progress({**description, "ElapsedSeconds": round(elapsed)})
            if description["EndpointStatus"] in ENDPOINT_TERMINAL:
                break
            if elapsed + poll > timeout:
                raise UserError(f"endpoint {plan.name} is still {description['EndpointStatus']} after {elapsed:.0f} s; "
                                f"it keeps coming up: annotate deploy status via `aws sagemaker describe-endpoint "
                                f"--endpoint-name {plan.name}`, or annotate teardown {plan.name}", field="timeout")
            sleep(poll)
        record["status"] = description["EndpointStatus"]
        local_endpoint.save_record(home, record)
        if record["status"] != "InService":
            raise UserError(f"endpoint {plan.name} is {record['status']}: "
                            f"{description.get('FailureReason', 'no reason given')} (annotate teardown {plan.name})")
    return record


def deploy_local(home: Path, job: str, *, name: str | None = None, port: int = 0,
                 background: bool = True, ready: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any] | None:
    """Serve a locally trained model on 127.0.0.1; background returns once /ping answers."""
    if background:
        return local_endpoint.start_background(home, job, name=name, port=port)
    local_endpoint.serve_foreground(home, job, name=name, port=port or 8080, ready=ready)
    return None


# ---- teardown ----

@dataclass
class TeardownStep:
    """One thing teardown removes: shown in the confirmation, then run.

    Other parts of annotate (e.g. expiring a batch's leftover HITs) add their own steps."""

    description: str
    run: Callable[[], Any]


def _missing(exc: Exception) -> bool:
    text = str(exc)
    return "Could not find" in text or "does not exist" in text or "not found" in text.lower()


def teardown_steps(home: Path, name: str, *, session=None, target: str | None = None) -> list[TeardownStep]:
    """What tearing down `name` involves, without doing it."""
    record = local_endpoint.load_record(home, name)
    target = target or (record or {}).get("target") or "aws"
    if target == "local":
        if not record:
            raise UserError(f"no local endpoint named '{name}'", field="endpoint")
        return [TeardownStep(f"local endpoint {name} (pid {record['pid']}, {record['url']})",
                             lambda: local_endpoint.stop_local(home, name))]
    if session is None:
        raise UserError("tearing down a SageMaker endpoint needs an AWS session", field="target")
    require_credentials(session)
    region = (record or {}).get("region") or session.region_name
    client = session.client("sagemaker", region_name=region)
    config, models = (record or {}).get("endpoint_config"), [(record or {}).get("model")] if record else []
    with aws_errors(f"DescribeEndpoint {name}"):
        try:
            config = client.describe_endpoint(EndpointName=name)["EndpointConfigName"]
        except ClientError as exc:
            if not _missing(exc):
                raise
            if record is None:
                raise UserError(f"no endpoint named '{name}' in {region}", field="endpoint") from None
    if config:
        with aws_errors(f"DescribeEndpointConfig {config}"):
            try:
                variants = client.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
                models = [v["ModelName"] for v in variants]
            except ClientError as exc:
                if not _missing(exc):
                    raise

    def delete(call: Callable[..., Any], **kwargs: str) -> Callable[[], bool]:
        def run() -> bool:
            try:
                call(**kwargs)
            except ClientError as exc:
                if _missing(exc):
                    return False  # already gone: teardown is idempotent
                raise
            return True
        return run

    steps = [TeardownStep(f"SageMaker endpoint {name} ({region})", delete(client.delete_endpoint, EndpointName=name))]
    if config:
        steps.append(TeardownStep(f"endpoint config {config}",
                                  delete(client.delete_endpoint_config, EndpointConfigName=config)))
    for model in filter(None, models):
        steps.append(TeardownStep(f"model {model}", delete(client.delete_model, ModelName=model)))
    return steps


def teardown(home: Path, name: str, steps: Sequence[TeardownStep]) -> list[str]:
    """Run the steps (endpoint first, model last), then forget the endpoint; returns what went."""
    done = []
    for step in steps:
        with aws_errors(f"removing {step.description}"):
            if step.run() is not False:
                done.append(step.description)
    local_endpoint.record_path(home, name).unlink(missing_ok=True)
    return done
