"""annotate train / deploy / predict / teardown through click: dry runs and user errors."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

import annotate.cli.train as train_cli
from annotate.cli import cli
from annotate.errors import UserError
from annotate.sagemaker import TrainingSettings
from test_training_support import IRIS_FEATURES, digits_export, iris_export

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A home whose batch 'iris' resolves to an iris export (the store and export are the lead's)."""
    export = iris_export(tmp_path / "export")
    monkeypatch.setattr(train_cli, "_settings", lambda ws, batch: TrainingSettings(
        features=IRIS_FEATURES, role_arn=ROLE, s3_prefix="s3://annotate-test/jobs"))
    monkeypatch.setattr(train_cli, "_export", lambda ws, batch, split, seed: export)
    return tmp_path / "home"


@pytest.fixture
def fake_aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def run(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)


@pytest.mark.parametrize("algorithm,image,mode", [
    ("sklearn", "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3", "File"),
    ("tensorflow", "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.13-cpu-py310", "File"),
    ("image-classification", "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1", "Pipe"),
])
def test_dry_run_json_sends_nothing(project, fake_aws, algorithm, image, mode):
    result = run(project, "train", "iris", "--target", "aws", "--algorithm", algorithm, "--job", "j1",
                 "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output.strip().splitlines()[-1])
    assert plan["dry_run"] is True
    [request] = plan["requests"]
    assert request["operation"] == "CreateTrainingJob"
    body = request["body"]
    assert body["AlgorithmSpecification"]["TrainingImage"] == image
    assert body["AlgorithmSpecification"]["TrainingInputMode"] == mode
    assert all(u["destination"].startswith("s3://annotate-test/jobs/j1/") for u in plan["uploads"])
    if mode == "Pipe":
        source = body["InputDataConfig"][0]["DataSource"]["S3DataSource"]
        assert source["S3DataType"] == "AugmentedManifestFile"
        assert source["AttributeNames"] == ["source-ref", "species"]
        assert body["HyperParameters"]["num_training_samples"] == "120"
    else:
        assert json.loads(body["HyperParameters"]["sagemaker_submit_directory"]) == \
            "s3://annotate-test/jobs/j1/source/sourcedir.tar.gz"
    # Nothing was sent: no bucket, no object, no job.
    assert fake_aws.client("s3").list_buckets()["Buckets"] == []
    assert fake_aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_train_local_cli_digits(tmp_path, monkeypatch):
    export = digits_export(tmp_path / "export", limit=600)
    monkeypatch.setattr(train_cli, "_settings", lambda ws, batch: TrainingSettings(features=["pixels"]))
    monkeypatch.setattr(train_cli, "_export", lambda ws, batch, split, seed: export)
    result = run(tmp_path / "home", "train", "digits", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["model_accuracy"] >= 0.9 and summary["target"] == "local"


def test_unknown_algorithm_exits_2(project):
    result = run(project, "train", "iris", "--algorithm", "xgboost")
    assert result.exit_code == 2 and "xgboost" in result.output


def test_builtin_locally_exits_2(project):
    result = CliRunner().invoke(cli, ["--home", str(project), "train", "iris", "--algorithm", "object-detection"])
    assert result.exit_code == 2 and "cannot run locally" in result.output


def test_no_credentials_exits_2_before_export(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(boto3.Session, "get_credentials", lambda self: None)
    exported = []
    monkeypatch.setattr(train_cli, "_settings", lambda ws, batch: TrainingSettings(features=IRIS_FEATURES))
    monkeypatch.setattr(train_cli, "_export", lambda *a: exported.append(a))
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "train", "iris", "--target", "aws"])
    assert result.exit_code == 2 and "no AWS credentials" in result.output
    assert exported == []


def test_no_labelled_items_exits_2(tmp_path, monkeypatch):
    def empty(ws, batch, split, seed):
        raise UserError(f"batch {batch!r} has no labelled items yet (run `annotate harvest`)")

    monkeypatch.setattr(train_cli, "_settings", lambda ws, batch: TrainingSettings(features=IRIS_FEATURES))
    monkeypatch.setattr(train_cli, "_export", empty)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "train", "iris"])
    assert result.exit_code == 2 and "no labelled items" in result.output
    assert not (tmp_path / "training").exists()


def test_label_attribute_missing_exits_2(project, monkeypatch, fake_aws):
    export = train_cli._export(None, "iris", 0.8, 0)
    export.label_attribute = "colour"
    result = CliRunner().invoke(cli, ["--home", str(project), "train", "iris", "--target", "aws",
                                      "--algorithm", "image-classification"])
    assert result.exit_code == 2 and "'colour' is missing" in result.output
    assert fake_aws.client("s3").list_buckets()["Buckets"] == []


def test_deploy_dry_run_and_local_round_trip(project, fake_aws):
    fake_aws.client("s3").create_bucket(Bucket="annotate-test")
    assert run(project, "train", "iris", "--target", "aws", "--job", "iris-aws").exit_code == 0
    result = run(project, "deploy", "iris-aws", "--target", "aws", "--serverless-memory", "1024",
                 "--dry-run", "--json")
    plan = json.loads(result.output.strip().splitlines()[-1])
    assert [r["operation"] for r in plan["requests"]] == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    assert fake_aws.client("sagemaker").list_models()["Models"] == []

    assert run(project, "train", "iris", "--job", "iris-local", "--json").exit_code == 0
    deployed = run(project, "deploy", "iris-local", "--background", "--json")
    record = json.loads(deployed.output.strip().splitlines()[-1])
    try:
        predicted = run(project, "predict", "iris-local", "5.1,3.5,1.4,0.2", "--json")
        rows = json.loads(predicted.output.strip().splitlines()[-1])["predictions"]
        assert rows[0]["label"] == "setosa"
        table = run(project, "predict", "iris-local", "6.9,3.1,5.4,2.1")
        assert "virginica" in table.output
    finally:
        # No terminal to confirm on (CliRunner's stdin): refused, exit 2, naming what it would remove.
        cancelled = CliRunner().invoke(cli, ["--home", str(project), "teardown", "iris-local"], input="y\n")
        assert cancelled.exit_code == 2 and f"pid {record['pid']}" in cancelled.output
        assert "pass --yes" in cancelled.output
        gone = run(project, "teardown", "iris-local", "--yes", "--json")
    assert json.loads(gone.output.strip().splitlines()[-1])["removed"][0].startswith("local endpoint iris-local")
