"""Local training: the training/ scripts run as SageMaker would run them, on exported CSVs."""

from __future__ import annotations

import json
import tarfile

import pytest

from annotate.errors import UserError
from annotate.sagemaker import TrainingSettings, load_job, train_local
from test_training_support import IRIS_FEATURES, digits_export, iris_export, write_csv


def test_sklearn_on_digits_reaches_090(tmp_path):
    export = digits_export(tmp_path / "export")
    lines = []
    result = train_local(tmp_path / "home", export, {"training": {"features": ["pixels"]}},
                         batch="digits", echo=lines.append)

    assert result.model_accuracy >= 0.9
    work = tmp_path / "home" / "training" / result.job_name
    # The /opt/ml-like layout and what SageMaker would upload.
    metrics = json.loads((work / "output" / "data" / "metrics.json").read_text())
    assert metrics["validation:accuracy"] == result.model_accuracy
    assert metrics["validation:samples"] == 359  # 20% of 1797
    assert any(line.startswith("validation:accuracy=") for line in lines)
    hps = json.loads((work / "input" / "config" / "hyperparameters.json").read_text())
    assert hps["sagemaker_program"] == '"sklearn_classifier.py"'
    assert json.loads(json.loads(hps["features"])) == ["pixels"]
    with tarfile.open(result.model_artifact) as archive:
        assert sorted(archive.getnames()) == ["metadata.json", "model.joblib"]
    assert load_job(tmp_path / "home", result.job_name).metrics == metrics


def test_metrics_line_is_parseable_by_the_metric_definition(tmp_path):
    import re

    from annotate.sagemaker.requests import METRIC_DEFINITIONS

    export = iris_export(tmp_path / "export")
    lines = []
    result = train_local(tmp_path / "home", export, {"features": IRIS_FEATURES}, batch="iris", echo=lines.append)
    regex = next(d["Regex"] for d in METRIC_DEFINITIONS if d["Name"] == "validation:accuracy")
    found = [float(m.group(1)) for line in lines if (m := re.search(regex, line))]
    assert found == [pytest.approx(result.metrics["validation:accuracy"], abs=1e-6)]
    assert result.labels == ["setosa", "versicolor", "virginica"]


def test_builtin_algorithm_cannot_run_locally(tmp_path):
    export = iris_export(tmp_path / "export")
    with pytest.raises(UserError, match="cannot run locally"):
        train_local(tmp_path / "home", export, {"features": IRIS_FEATURES}, algorithm="image-classification")
    assert not (tmp_path / "home" / "training").exists()


def test_unknown_algorithm(tmp_path):
    export = iris_export(tmp_path / "export")
    with pytest.raises(UserError, match="unknown algorithm 'xgboost'"):
        train_local(tmp_path / "home", export, {"features": IRIS_FEATURES}, algorithm="xgboost")


def test_missing_feature_column_names_file_and_field(tmp_path):
    export = iris_export(tmp_path / "export")
    with pytest.raises(UserError) as info:
        train_local(tmp_path / "home", export, {"features": ["petal_area"]})
    assert "petal_area" in str(info.value) and str(export.train_csv) in str(info.value)
    assert info.value.field == "training.features"


def test_no_labelled_items(tmp_path):
    export = iris_export(tmp_path / "export")
    rows = [{"id": "a", **{f: 1.0 for f in IRIS_FEATURES}, "label": "", "label_index": "", "confidence": "",
             "answers": "[]"}]
    write_csv(export.train_csv, rows)
    with pytest.raises(UserError, match="no labelled items"):
        train_local(tmp_path / "home", export, {"features": IRIS_FEATURES})
    assert not (tmp_path / "home" / "training").exists()


def test_script_failure_reports_reason(tmp_path):
    from annotate.sagemaker import TrainingFailed

    export = iris_export(tmp_path / "export")
    # A single class: the script itself refuses, and its reason (output/failure) comes back.
    rows = [{"id": str(i), **{f: float(i) for f in IRIS_FEATURES}, "label": "setosa", "label_index": 0,
             "confidence": 1.0, "answers": "[]"} for i in range(5)]
    write_csv(export.train_csv, rows)
    with pytest.raises(TrainingFailed, match="single class"):
        train_local(tmp_path / "home", export, TrainingSettings(features=IRIS_FEATURES))


@pytest.mark.slow  # two TensorFlow imports (training subprocess + serving): ~20-40 s
def test_tensorflow_iris_dnn(tmp_path):
    pytest.importorskip("tensorflow")
    export = iris_export(tmp_path / "export")
    result = train_local(tmp_path / "home", export,
                         {"features": IRIS_FEATURES, "hyperparameters": {"epochs": 40}},
                         algorithm="tensorflow", batch="iris")
    assert result.model_accuracy >= 0.8
    model_dir = tmp_path / "home" / "training" / result.job_name / "model"
    assert (model_dir / "1" / "saved_model.pb").exists()  # TensorFlow Serving's version layout

    # The local endpoint answers as TensorFlow Serving would: class probabilities.
    import urllib.request

    from annotate.sagemaker.endpoint import serve_in_thread
    from annotate.sagemaker.predict import read_response

    with serve_in_thread(load_job(tmp_path / "home", result.job_name)) as endpoint:
        request = urllib.request.Request(f"{endpoint.url}/invocations", data=b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
    [probabilities] = json.loads(body)["predictions"]
    assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-4
    [row] = read_response(body, "application/json", name="x", algorithm="tensorflow", labels=result.labels)
    assert row.label == "setosa"
