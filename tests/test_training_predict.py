"""Predict what was exported: the export's CSV and manifest as they are, features in training
order; the local endpoint answers every bad request with a status; AWS errors are messages."""

from __future__ import annotations

import csv
import http.client
import importlib.util
import io
import json
import sys
import urllib.parse

import pytest
from click.testing import CliRunner
from PIL import Image

from annotate.cli import cli
from annotate.errors import UserError
from annotate.sagemaker import deploy_local, predict, train_local
from annotate.sagemaker.endpoint import save_record, serve_in_thread, stop_local
from annotate.sagemaker.local import load_job
from annotate.sagemaker.settings import training_dir
from test_training_support import IRIS_FEATURES, iris_export, write_csv, write_manifest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    export = iris_export(root / "export")
    result = train_local(root / "home", export, {"features": IRIS_FEATURES}, batch="iris", job="iris-1")
    return root, export, result


def raw_post(url, body, content_type, accept="application/json"):
    """A POST that reports a dropped connection as such (urllib would raise)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("POST", "/invocations", body=body,
                           headers={"Content-Type": content_type, "Accept": accept})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def png_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("body,content_type,accept,status", [
    (b"", "text/csv", "application/json", 400),
    (b"", "application/json", "application/json", 400),
    (b"[]", "application/json", "application/json", 400),
    (b'{"instances": []}', "application/json", "application/json", 400),
    (b"[]", "text/csv", "application/json", 400),
    (b"id,sepal_length\n", "text/csv", "application/json", 400),
    (b"\xff\xfe\x00", "text/csv", "application/json", 400),
    (b"{not json", "application/json", "application/json", 400),
    (b'"text"', "application/json", "application/json", 400),
    (b"[[1, 2], [1, 2, 3, 4]]", "application/json", "application/json", 400),
    (png_bytes(), "image/png", "application/json", 415),
    (b"5.1,3.5,1.4,0.2", "text/csv", "application/xml", 415),
])
def test_every_bad_request_gets_a_status(trained, body, content_type, accept, status):
    root, _, result = trained
    with serve_in_thread(load_job(root / "home", result.job_name)) as endpoint:
        answer = raw_post(endpoint.url, body, content_type, accept)
        assert answer[0] == status, answer
        assert raw_post(endpoint.url, b"5.1,3.5,1.4,0.2", "text/csv")[0] == 200  # still serving


def test_tensorflow_output_honours_accept():
    source = training_dir()
    sys.path.insert(0, str(source))
    try:
        spec = importlib.util.spec_from_file_location("tf_script", source / "tf_classifier.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(source))
    assert module.output_fn([[0.25, 0.75]], "text/csv") == ("0.250000,0.750000\n", "text/csv")
    assert module.output_fn([[0.25, 0.75]], "*/*")[1] == "application/json"
    with pytest.raises(ValueError, match="accept type"):
        module.output_fn([[0.25, 0.75]], "application/xml")


def test_predict_the_exported_csv_in_training_order(trained):
    root, export, result = trained
    home = root / "home"
    record = deploy_local(home, result.job_name, name="iris-csv", background=True)
    try:
        rows = list(csv.DictReader(export.validation_csv.open(newline="")))
        expected = [r["label"] for r in rows]
        as_exported = predict(home, "iris-csv", [str(export.validation_csv)])
        assert len(as_exported) == len(rows)
        assert as_exported[0].input.endswith(f"({rows[0]['id']})")
        agree = sum(p.label == e for p, e in zip(as_exported, expected)) / len(rows)
        assert agree >= 0.9
        # The same rows with the feature columns in another order: the same predictions.
        reordered = root / "reordered.csv"
        columns = ["answers", "label", *reversed(IRIS_FEATURES), "id", "confidence", "label_index"]
        write_csv(reordered, [{c: r[c] for c in columns} for r in rows])
        assert [p.label for p in predict(home, "iris-csv", [str(reordered)])] == [p.label for p in as_exported]
        # The manifest, as annotate exports items without pictures: `source` holds the item's columns.
        manifest = write_manifest(root / "validation.manifest", [
            {"source": json.dumps({k: r[k] for k in ["id", *IRIS_FEATURES]}, sort_keys=True),
             "species": int(r["label_index"])} for r in rows])
        assert [p.label for p in predict(home, "iris-csv", [str(manifest)])] == [p.label for p in as_exported]
        # A column missing: the file and the column named.
        write_csv(root / "short.csv", [{"id": "a", "sepal_length": 1.0}])
        with pytest.raises(UserError, match="no column sepal_width"):
            predict(home, "iris-csv", [str(root / "short.csv")])
    finally:
        stop_local(home, "iris-csv")
    assert record["name"] == "iris-csv"


def test_readme_quickstart_predict_runs_as_written(tmp_path, monkeypatch):
    """README: annotate export iris --out out/ ; annotate train iris ;
    annotate deploy --target local --background && annotate predict <job> out/iris/validation.csv"""
    from annotate.demo import run_demo

    summary = run_demo("iris", tmp_path, seed=0, train=False, timeout=240)
    monkeypatch.chdir(tmp_path)
    home = summary["home"]

    def annotate(*args):
        result = CliRunner().invoke(cli, ["--home", home, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    annotate("export", "iris", "--out", "out/")
    trained = json.loads(annotate("train", "iris", "--json").strip().splitlines()[-1])
    job = trained["job_name"]
    deployed = json.loads(annotate("deploy", "--target", "local", "--background", "--json").strip().splitlines()[-1])
    try:
        assert deployed["job"] == job
        table = annotate("predict", job, "out/iris/validation.csv")
        rows = json.loads(annotate("predict", job, "out/iris/validation.csv", "--json").strip().splitlines()[-1])
        with open(tmp_path / "out" / "iris" / "validation.csv", newline="") as handle:
            truth = [r["label"] for r in csv.DictReader(handle)]
        predictions = rows["predictions"]
        assert len(predictions) == len(truth) and "setosa" in table
        # train exports the same split (seed 0): scoring out/iris/validation.csv through the endpoint
        # reproduces the model's own validation accuracy (features in the wrong order would not)
        agreement = sum(p["label"] == t for p, t in zip(predictions, truth)) / len(truth)
        assert agreement == pytest.approx(trained["model_accuracy"], abs=1e-6) and agreement >= 0.8

        # The reverse loop: what the model is unsure of goes back to the crowd as a new batch.
        reviewed = json.loads(annotate("predict", job, "out/iris/validation.csv", "--to-batch", "review", "--below", "0.9",
                                       "--json").strip().splitlines()[-1])
        unsure = [p for p in reviewed["predictions"] if p["score"] < 0.9]
        assert 0 < len(unsure) < len(predictions) and reviewed["review_batch"]["items"] == len(unsure)
        from annotate.config import load_batch

        batch = load_batch(tmp_path / "review")
        assert batch.name == "review" and batch.gold_column is None
        assert [i.id for i in batch.items] == [p["input"].split("(")[-1].rstrip(")") for p in unsure]
        assert set(batch.items[0].data) - {"id"} == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
        refused = CliRunner().invoke(cli, ["--home", home, "predict", job, "5.1,3.5,1.4,0.2", "--to-batch", "r2"])
        assert refused.exit_code == 2 and "bare row" in refused.output
    finally:
        annotate("teardown", job, "--yes")


def test_aws_model_error_and_non_json_answers_are_messages(aws, tmp_path):
    from botocore.exceptions import ClientError

    home = tmp_path / "home"
    save_record(home, {"name": "ep", "target": "aws", "region": "us-east-1", "job": "j", "algorithm": "sklearn",
                       "labels": []})

    def model_error(**kwargs):
        raise ClientError({"Error": {"Code": "ModelError", "Message": "Received server error (500)"},
                           "OriginalStatusCode": 500, "OriginalMessage": "each instance needs 4 features, got 2"},
                          "InvokeEndpoint")

    handler = lambda **kw: model_error()  # noqa: E731
    aws.events.register("before-call.sagemaker-runtime.InvokeEndpoint", handler)
    with pytest.raises(UserError) as info:
        predict(home, "ep", ["1,2"], session=aws)
    assert "ModelError" in str(info.value) and "needs 4 features" in str(info.value)
    aws.events.unregister("before-call.sagemaker-runtime.InvokeEndpoint", handler)

    import requests

    requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                  json={"results": [{"Body": "<html>oops</html>", "ContentType": "text/html"}]})
    with pytest.raises(UserError, match="is not JSON"):
        predict(home, "ep", ["1,2,3,4"], session=aws)
    # and through the CLI: exit 2, no traceback
    result = CliRunner().invoke(cli, ["--home", str(home), "predict", "ep", "1,2,3,4", "--region", "us-east-1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
