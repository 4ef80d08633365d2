"""Built-in algorithm jobs SageMaker would accept: each request checked against the algorithm's
documented hyperparameter table and the container's input contract, on moto's S3 and SageMaker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import annotate.cli.train as train_cli
from annotate.cli import cli
from annotate.errors import UserError
from annotate.sagemaker import TrainingSettings, plan_training, run_training
from annotate.sagemaker.algorithms import HYPERPARAMETERS, check_value
from test_training_support import boxes_export, local_digits_export, segmentation_export

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
PREFIX = "s3://annotate-test/jobs"


def batch_settings(**extra):
    # digits' own batch.toml: script-mode hyperparameters for the batch's (default sklearn) model
    return TrainingSettings(features=["pixels"], role_arn=ROLE, s3_prefix=PREFIX,
                            hyperparameters={"estimator": "svc", **extra.pop("hyperparameters", {})}, **extra)


def split_uri(uri):
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def assert_accepted(session, request, algorithm):
    """What the algorithm and its container would check: names in the table, required ones present,
    every value in range; every manifest and every file it references is an uploaded S3 object."""
    hp = request["HyperParameters"]
    table = HYPERPARAMETERS[algorithm]
    assert set(hp) <= set(table), set(hp) - set(table)
    assert {n for n, s in table.items() if s.get("required")} <= set(hp)
    for name, value in hp.items():
        assert isinstance(value, str) and check_value(algorithm, name, value) == value
    assert int(hp["mini_batch_size"]) <= int(hp["num_training_samples"])
    s3 = session.client("s3")
    for channel in request["InputDataConfig"]:
        source = channel["DataSource"]["S3DataSource"]
        assert source["S3DataType"] == "AugmentedManifestFile" and source["AttributeNames"][0] == "source-ref"
        body = s3.get_object(Bucket=split_uri(source["S3Uri"])[0], Key=split_uri(source["S3Uri"])[1])["Body"].read()
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert lines
        for line in lines:
            for attribute in source["AttributeNames"]:
                assert attribute in line
            for key, value in line.items():
                if key.endswith("-ref"):
                    assert value.startswith("s3://"), (key, value)
                    bucket, object_key = split_uri(value)
                    s3.head_object(Bucket=bucket, Key=object_key)  # raises if it was never uploaded
    return hp


def test_image_classification_digits_8x8(aws, tmp_path):
    export = local_digits_export(tmp_path / "export", n=20)
    plan = plan_training(export, batch_settings(), region="us-east-1", algorithm="image-classification", job="d-ic")
    run_training(plan, aws, tmp_path / "home", poll=0)
    hp = assert_accepted(aws, aws.client("sagemaker").describe_training_job(TrainingJobName="d-ic"),
                         "image-classification")
    assert "estimator" not in hp  # the batch's script-mode hyperparameter stays with script mode
    assert (hp["num_classes"], hp["num_training_samples"], hp["mini_batch_size"]) == ("10", "16", "16")
    # 8x8 images into a pretrained 224x224 network: scaled up first
    assert (hp["image_shape"], hp["resize"]) == ("3,224,224", "224")


def test_image_classification_from_scratch_takes_the_images_shape(aws, tmp_path):
    export = local_digits_export(tmp_path / "export", n=20)
    settings = batch_settings(hyperparameters={"image-classification": {"use_pretrained_model": 0,
                                                                        "num_layers": 20}})
    hp = plan_training(export, settings, region="us-east-1", algorithm="image-classification",
                       job="d-ic").request["HyperParameters"]
    assert (hp["image_shape"], hp["use_pretrained_model"], hp["num_layers"]) == ("3,8,8", "0", "20")
    assert "resize" not in hp


def test_object_detection_boxes(aws, tmp_path):
    export = boxes_export(tmp_path / "export", n=15)
    settings = batch_settings(hyperparameters={"object-detection": {"epochs": 5}})
    plan = plan_training(export, settings, region="us-east-1", algorithm="object-detection", job="b-od")
    run_training(plan, aws, tmp_path / "home", poll=0)
    hp = assert_accepted(aws, aws.client("sagemaker").describe_training_job(TrainingJobName="b-od"),
                         "object-detection")
    # 12 training samples: the default batch of 16 would not fit
    assert (hp["num_classes"], hp["num_training_samples"], hp["mini_batch_size"], hp["epochs"]) == \
        ("2", "12", "12", "5")


def test_semantic_segmentation_uploads_masks_and_counts_background(aws, tmp_path):
    export = segmentation_export(tmp_path / "export", n=10)
    plan = plan_training(export, batch_settings(), region="us-east-1", algorithm="semantic-segmentation",
                         job="s-ss")
    run_training(plan, aws, tmp_path / "home", poll=0)
    request = aws.client("sagemaker").describe_training_job(TrainingJobName="s-ss")
    hp = assert_accepted(aws, request, "semantic-segmentation")
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["AttributeNames"] == \
        ["source-ref", "shapes-mask-ref"]
    # masks hold 0 (background) to 3: four classes
    assert (hp["num_classes"], hp["num_training_samples"]) == ("4", "8")
    assert int(hp["validation_mini_batch_size"]) <= 2
    masks = [u for u in plan.uploads if u.path and u.path.parent.name == "masks"]
    assert len(masks) == 10


@pytest.mark.parametrize("hyperparameters,message", [
    ({"object-detection": {"estimator": "svc"}}, "object-detection has no hyperparameter 'estimator' (it accepts: "),
    ({"object-detection": {"epochs": 0}}, "epochs must be ≥ 1"),
    ({"object-detection": {"base_network": "resnet-18"}}, "base_network must be one of vgg-16, resnet-50"),
    ({"object-detection": {"image_shape": 224}}, "image_shape must be ≥ 300"),
    ({"object-detection": {"learning_rate": "fast"}}, "learning_rate must be a number"),
])
def test_user_hyperparameters_checked_against_the_table(aws, tmp_path, hyperparameters, message):
    export = boxes_export(tmp_path / "export", n=6)
    with pytest.raises(UserError) as info:
        plan_training(export, batch_settings(hyperparameters=hyperparameters), region="us-east-1",
                      algorithm="object-detection", job="x")
    assert message in str(info.value)
    if "accepts" in message:
        assert "base_network" in str(info.value) and "nms_threshold" in str(info.value)


def test_the_batch_algorithm_takes_plain_hyperparameters(aws, tmp_path):
    export = boxes_export(tmp_path / "export", n=6)
    settings = TrainingSettings(features=[], role_arn=ROLE, s3_prefix=PREFIX, algorithm="object-detection",
                                hyperparameters={"epochs": 3})
    hp = plan_training(export, settings, region="us-east-1", job="x").request["HyperParameters"]
    assert hp["epochs"] == "3"
    settings.hyperparameters = {"epochz": 3}
    with pytest.raises(UserError, match="no hyperparameter 'epochz'"):
        plan_training(export, settings, region="us-east-1", job="x")


@pytest.mark.parametrize("algorithm", ["object-detection", "semantic-segmentation"])
def test_task_type_must_fit_the_algorithm(aws, tmp_path, algorithm):
    export = local_digits_export(tmp_path / "export", n=10)
    with pytest.raises(UserError) as info:
        plan_training(export, batch_settings(), region="us-east-1", algorithm=algorithm, job="x")
    assert "groundtruth/image-classification" in str(info.value) and "image-classification" in str(info.value)
    with pytest.raises(UserError, match="trains on groundtruth/image-classification"):
        plan_training(boxes_export(tmp_path / "boxes", n=6), batch_settings(), region="us-east-1",
                      algorithm="image-classification", job="x")


def test_cli_digits_to_object_detection_exits_2(tmp_path, monkeypatch, aws):
    export = local_digits_export(tmp_path / "export", n=10)
    monkeypatch.setattr(train_cli, "_settings", lambda ws, batch: batch_settings())
    monkeypatch.setattr(train_cli, "_export", lambda ws, batch, split, seed: export)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "train", "digits", "--target", "aws",
                                      "--algorithm", "object-detection", "--dry-run", "--json"])
    assert result.exit_code == 2, result.output
    assert "object-detection trains on groundtruth/object-detection" in result.output
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "train", "digits", "--target", "aws",
                                      "--algorithm", "image-classification", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output.strip().splitlines()[-1])["requests"][0]["body"]
    assert "estimator" not in body["HyperParameters"] and body["HyperParameters"]["resize"] == "224"
