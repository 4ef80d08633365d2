"""SageMaker training, deploy, predict and teardown against moto: the exact requests sent."""

from __future__ import annotations

import io
import json
import re
import tarfile

import pytest

from annotate.errors import UserError
from annotate.sagemaker import (TrainingSettings, deploy_aws, plan_training, predict, prepare_deploy_aws,
                                run_training, teardown, teardown_steps)
from annotate.sagemaker.endpoint import load_record
from test_training_support import (IRIS_FEATURES, boxes_export, digits_export, iris_export, manifest_lines,
                                   write_manifest)

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
PREFIX = "s3://annotate-test/jobs"


def capture(session, operation):
    """Record the wire body of each `operation` call (botocore's before-call event)."""
    sent = []
    session.events.register(f"before-call.sagemaker.{operation}",
                            lambda params, **_: sent.append(json.loads(params["body"])))
    return sent


def settings(**extra):
    return TrainingSettings(features=IRIS_FEATURES, role_arn=ROLE, s3_prefix=PREFIX, **extra)


def builtin_channel(name, uri, attribute):
    return {"ChannelName": name,
            "DataSource": {"S3DataSource": {"S3DataType": "AugmentedManifestFile", "S3Uri": uri,
                                            "S3DataDistributionType": "FullyReplicated",
                                            "AttributeNames": ["source-ref", attribute]}},
            "ContentType": "application/x-recordio", "RecordWrapperType": "RecordIO", "CompressionType": "None"}


def test_image_classification_request(aws, tmp_path):
    export = iris_export(tmp_path / "export")
    sent = capture(aws, "CreateTrainingJob")
    plan = plan_training(export, settings(), region="us-east-1", algorithm="image-classification", job="iris-ic-1")
    result = run_training(plan, aws, tmp_path / "home", poll=0)

    base = f"{PREFIX}/iris-ic-1"
    assert sent == [{
        "TrainingJobName": "iris-ic-1",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1",
            "TrainingInputMode": "Pipe"},
        "InputDataConfig": [builtin_channel("train", f"{base}/input/train.manifest", "species"),
                            builtin_channel("validation", f"{base}/input/validation.manifest", "species")],
        "OutputDataConfig": {"S3OutputPath": f"{base}/output"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "HyperParameters": {"num_classes": "3", "num_training_samples": "120", "image_shape": "3,224,224",
                            "num_layers": "18", "use_pretrained_model": "1", "epochs": "10",
                            "learning_rate": "0.001", "mini_batch_size": "32",
                            "augmentation_type": "crop_color_transform", "resize": "224"},
    }]
    s3 = aws.client("s3")
    body = s3.get_object(Bucket="annotate-test", Key="jobs/iris-ic-1/input/train.manifest")["Body"].read()
    assert body == export.train_manifest.read_bytes()
    assert result.status == "Completed"
    assert result.model_artifact == f"{base}/output/iris-ic-1/output/model.tar.gz"


def test_object_detection_and_segmentation_hyperparameters(aws, tmp_path):
    export = boxes_export(tmp_path / "export", n=150)
    od = plan_training(export, settings(hyperparameters={"object-detection": {"epochs": 5}}), region="eu-west-1",
                       algorithm="object-detection", job="od-1").request
    assert od["AlgorithmSpecification"]["TrainingImage"] == \
        "685385470294.dkr.ecr.eu-west-1.amazonaws.com/object-detection:1"
    hp = od["HyperParameters"]
    assert (hp["base_network"], hp["use_pretrained_model"], hp["num_classes"], hp["num_training_samples"],
            hp["epochs"]) == ("resnet-50", "1", "2", "120", "5")
    assert all(isinstance(v, str) for v in hp.values())

    # Semantic segmentation reads the mask reference, `<attribute>-ref`.
    records = [{"source-ref": f"s3://b/img{i}.jpg", "turtles-ref": f"s3://b/out/{i}_x.png",
                "turtles-ref-metadata": {"internal-color-map": {"0": {"class-name": "BACKGROUND"},
                                                                 "1": {"class-name": "Turtle"}},
                                         "type": "groundtruth/semantic-segmentation"}}
               for i in range(10)]
    write_manifest(tmp_path / "seg.manifest", records)
    seg_export = {"train_manifest": tmp_path / "seg.manifest", "label_attribute": "turtles", "labels": []}
    ss = plan_training(seg_export, settings(), region="us-west-2", algorithm="semantic-segmentation",
                       job="ss-1").request
    assert ss["InputDataConfig"][0]["DataSource"]["S3DataSource"]["AttributeNames"] == ["source-ref", "turtles-ref"]
    assert (ss["HyperParameters"]["backbone"], ss["HyperParameters"]["algorithm"],
            ss["HyperParameters"]["num_classes"], ss["HyperParameters"]["num_training_samples"]) == \
        ("resnet-50", "fcn", "2", "10")
    assert ss["AlgorithmSpecification"]["TrainingImage"].startswith("433757028032.dkr.ecr.us-west-2")


def test_sklearn_script_mode_request_and_source_tarball(aws, tmp_path):
    export = iris_export(tmp_path / "export")
    sent = capture(aws, "CreateTrainingJob")
    plan = plan_training(export, settings(hyperparameters={"C": 0.5}), region="us-east-1", algorithm="sklearn",
                         job="iris-sklearn-1")
    run_training(plan, aws, tmp_path / "home", poll=0)

    base = f"{PREFIX}/iris-sklearn-1"
    request = sent[0]
    assert request["AlgorithmSpecification"]["TrainingImage"] == \
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert [c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]] == \
        [f"{base}/input/train/", f"{base}/input/validation/"]
    assert request["HyperParameters"] == {
        "features": json.dumps(json.dumps(IRIS_FEATURES)),
        "labels": json.dumps(json.dumps(["setosa", "versicolor", "virginica"])),
        "num_classes": "3",
        "C": "0.5",
        "sagemaker_program": '"sklearn_classifier.py"',
        "sagemaker_submit_directory": f'"{base}/source/sourcedir.tar.gz"',
        "sagemaker_container_log_level": "20",
        "sagemaker_job_name": '"iris-sklearn-1"',
        "sagemaker_region": '"us-east-1"',
    }
    tarball = aws.client("s3").get_object(Bucket="annotate-test", Key="jobs/iris-sklearn-1/source/sourcedir.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(tarball["Body"].read())) as archive:
        assert {"sklearn_classifier.py", "tf_classifier.py", "labelled_csv.py"} <= set(archive.getnames())


def test_tensorflow_request_image_and_model_dir(aws, tmp_path):
    plan = plan_training(iris_export(tmp_path / "export"), settings(), region="us-east-1",
                         algorithm="tensorflow", job="iris-tf-1")
    request = plan.request
    assert request["AlgorithmSpecification"]["TrainingImage"] == \
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.13-cpu-py310"
    assert request["HyperParameters"]["sagemaker_program"] == '"tf_classifier.py"'
    assert request["HyperParameters"]["model_dir"] == f'"{PREFIX}/iris-tf-1/output/iris-tf-1/model"'


def test_local_source_refs_are_uploaded_and_rewritten(aws, tmp_path):
    from PIL import Image

    images = []
    for i in range(4):
        path = tmp_path / f"flower{i}.png"
        Image.new("RGB", (4, 4), (i * 40, 0, 0)).save(path)
        images.append(str(path))
    manifest = write_manifest(tmp_path / "train.manifest", manifest_lines(images, [0, 1, 0, 1], ["a", "b"], "flower"))
    export = {"train_manifest": manifest, "label_attribute": "flower", "labels": ["a", "b"]}
    plan = plan_training(export, settings(), region="us-east-1", algorithm="image-classification", job="f-1")
    destinations = [u.destination for u in plan.uploads]
    assert len(destinations) == 5 and destinations[-1] == f"{PREFIX}/f-1/input/train.manifest"
    run_training(plan, aws, None, poll=0)
    body = aws.client("s3").get_object(Bucket="annotate-test", Key="jobs/f-1/input/train.manifest")["Body"].read()
    refs = [json.loads(line)["source-ref"] for line in body.decode().splitlines()]
    assert refs == destinations[:4]


def test_label_attribute_missing_from_manifest(aws, tmp_path):
    export = iris_export(tmp_path / "export")
    export.label_attribute = "colour"
    with pytest.raises(UserError) as info:
        plan_training(export, settings(), region="us-east-1", algorithm="image-classification")
    assert "'colour' is missing" in str(info.value) and info.value.line == 1


def test_no_role_and_no_credentials(aws, tmp_path, monkeypatch):
    export = iris_export(tmp_path / "export")
    with pytest.raises(UserError, match="execution role"):
        plan_training(export, TrainingSettings(features=IRIS_FEATURES), region="us-east-1")
    plan = plan_training(export, settings(), region="us-east-1", job="nocreds")
    monkeypatch.setattr(aws, "get_credentials", lambda: None)
    with pytest.raises(UserError, match="no AWS credentials"):
        run_training(plan, aws, tmp_path / "home")
    assert "Contents" not in aws.client("s3").list_objects_v2(Bucket="annotate-test")  # nothing uploaded


def test_failed_job_shows_failure_reason(aws, tmp_path, monkeypatch):
    from annotate.sagemaker import TrainingFailed
    from annotate.sagemaker import aws as aws_module

    plan = plan_training(digits_export(tmp_path / "export", limit=50), TrainingSettings(
        features=["pixels"], role_arn=ROLE, s3_prefix=PREFIX), region="us-east-1", job="digits-fail")

    def failed(client, name, **kwargs):
        return {"TrainingJobName": name, "TrainingJobStatus": "Failed",
                "FailureReason": "AlgorithmError: no labelled rows"}

    monkeypatch.setattr(aws_module, "wait_for_training", failed)
    with pytest.raises(TrainingFailed, match="AlgorithmError: no labelled rows"):
        run_training(plan, aws, tmp_path / "home")


def test_deploy_real_time_and_serverless_then_predict_and_teardown(aws, tmp_path):
    home = tmp_path / "home"
    plan = plan_training(iris_export(tmp_path / "export"), settings(), region="us-east-1", job="iris-sk")
    run_training(plan, aws, home, poll=0)
    sent = {op: capture(aws, op) for op in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint")}

    deployment = prepare_deploy_aws(home, aws, "iris-sk", serverless_memory=2048, max_concurrency=2)
    name = deployment.name
    # Each deployment names its own model, config and endpoint: the service refuses reused names.
    assert re.fullmatch(r"iris-sk-\d{8}-\d{6}-\d{3}", name)
    assert deployment.model == deployment.endpoint_config == name
    record = deploy_aws(home, aws, deployment, poll=0)
    assert record["status"] == "InService"
    assert sent["CreateModel"] == [{
        "ModelName": name, "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "ModelDataUrl": f"{PREFIX}/iris-sk/output/iris-sk/output/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "sklearn_classifier.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": f"{PREFIX}/iris-sk/source/sourcedir.tar.gz",
                            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": "us-east-1"}}}]
    assert sent["CreateEndpointConfig"] == [{"EndpointConfigName": name, "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": name,
         "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2}}]}]
    assert sent["CreateEndpoint"] == [{"EndpointName": name, "EndpointConfigName": name}]

    # sagemaker-runtime: moto answers from a queue of canned results.
    import requests

    answer = {"predictions": [{"label": "virginica", "label_index": 2, "score": 0.97}]}
    requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                  json={"results": [{"Body": json.dumps(answer), "ContentType": "application/json"}]})
    invoked = []
    aws.events.register("before-call.sagemaker-runtime.InvokeEndpoint",
                        lambda params, **_: invoked.append(params))
    [prediction] = predict(home, name, ["6.3,3.3,6.0,2.5"], session=aws)
    assert (prediction.label, prediction.score) == ("virginica", 0.97)
    assert invoked[0]["body"] == b"6.3,3.3,6.0,2.5"
    assert invoked[0]["headers"]["Content-Type"] == "text/csv"

    steps = teardown_steps(home, name, session=aws)
    assert [s.description for s in steps] == [f"SageMaker endpoint {name} (us-east-1)",
                                              f"endpoint config {name}", f"model {name}"]
    assert teardown(home, name, steps) == [s.description for s in steps]
    client = aws.client("sagemaker")
    assert client.list_endpoints()["Endpoints"] == [] and client.list_models()["Models"] == []
    assert load_record(home, name) is None


def test_redeploy_gets_new_names_and_a_taken_name_is_refused(aws, tmp_path):
    home = tmp_path / "home"
    run_training(plan_training(iris_export(tmp_path / "export"), settings(), region="us-east-1", job="iris-sk"),
                 aws, home, poll=0)
    first = deploy_aws(home, aws, prepare_deploy_aws(home, aws, "iris-sk", serverless_memory=1024), poll=0)
    second = deploy_aws(home, aws, prepare_deploy_aws(home, aws, "iris-sk", serverless_memory=1024), poll=0)
    assert len({first["model"], second["model"]}) == 2 and first["endpoint"] != second["endpoint"]
    assert len(aws.client("sagemaker").list_models()["Models"]) == 2
    with pytest.raises(UserError, match=f"endpoint '{first['name']}' already exists"):
        prepare_deploy_aws(home, aws, "iris-sk", name=first["name"], serverless_memory=1024)


def test_waits_time_out_with_progress(aws, tmp_path):
    from annotate.sagemaker.aws import wait_for_training
    from annotate.sagemaker.deploy import deploy_aws as deploy

    class Slow:
        def describe_training_job(self, TrainingJobName):
            return {"TrainingJobName": TrainingJobName, "TrainingJobStatus": "InProgress",
                    "SecondaryStatus": "Training"}

    ticks = iter(range(0, 10_000, 30))
    seen = []
    with pytest.raises(UserError, match="still InProgress .* after 90 s"):
        wait_for_training(Slow(), "j", poll=30, timeout=100, progress=seen.append, sleep=lambda s: None,
                          clock=lambda: next(ticks))
    assert [d["ElapsedSeconds"] for d in seen] == [30, 60, 90]

    home = tmp_path / "home"
    run_training(plan_training(iris_export(tmp_path / "export"), settings(), region="us-east-1", job="iris-sk"),
                 aws, home, poll=0)
    plan = prepare_deploy_aws(home, aws, "iris-sk", serverless_memory=1024)
    client = aws.client("sagemaker")
    original = client.describe_endpoint
    aws.client = lambda *a, **k: client
    client.describe_endpoint = lambda **kw: {**original(**kw), "EndpointStatus": "Creating"}
    ticks = iter(range(0, 10_000, 60))
    with pytest.raises(UserError, match="still Creating after 120 s"):
        deploy(home, aws, plan, poll=60, timeout=150, sleep=lambda s: None, clock=lambda: next(ticks))


def test_aws_errors_are_messages(aws, tmp_path):
    from botocore.exceptions import ClientError

    plan = plan_training(iris_export(tmp_path / "export"), settings(), region="us-east-1", job="iris-x")

    def refuse(**kwargs):
        raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": "account-level service limit"}},
                          "CreateTrainingJob")

    handler = lambda **kw: refuse()  # noqa: E731
    aws.events.register("before-call.sagemaker.CreateTrainingJob", handler)
    with pytest.raises(UserError, match="CreateTrainingJob iris-x: AWS said ResourceLimitExceeded"):
        run_training(plan, aws, tmp_path / "home", poll=0)


def test_deploy_instance_request_and_bad_serverless_memory(aws, tmp_path):
    home = tmp_path / "home"
    plan = plan_training(iris_export(tmp_path / "export"), settings(), region="us-east-1",
                         algorithm="image-classification", job="iris-ic")
    run_training(plan, aws, home, poll=0)
    deployment = prepare_deploy_aws(home, aws, "iris-ic", instance_type="ml.c5.xlarge")
    model, config, _ = (r["body"] for r in deployment.requests)
    assert model["PrimaryContainer"] == {
        "Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1",
        "ModelDataUrl": f"{PREFIX}/iris-ic/output/iris-ic/output/model.tar.gz"}
    assert config["ProductionVariants"] == [{"VariantName": "AllTraffic", "ModelName": deployment.model,
                                             "InstanceType": "ml.c5.xlarge", "InitialInstanceCount": 1,
                                             "InitialVariantWeight": 1.0}]
    with pytest.raises(UserError, match="serverless memory"):
        prepare_deploy_aws(home, aws, "iris-ic", serverless_memory=1000)
    with pytest.raises(UserError, match="no SageMaker training job"):
        prepare_deploy_aws(home, aws, "missing-job")
