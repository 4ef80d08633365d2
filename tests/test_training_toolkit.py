"""Script-mode hyperparameters reach each training script the way the SageMaker training toolkit
delivers them: JSON-decoded from hyperparameters.json, sagemaker_* taken out, then `--name value`
with one-letter names as `-n` (so `C` arrives as `-C`)."""

from __future__ import annotations

import importlib.util
import sys

import joblib
import pytest

from annotate.errors import UserError
from annotate.sagemaker import TrainingSettings, plan_training, train_local
from annotate.sagemaker import requests as rq
from annotate.sagemaker.settings import FRAMEWORKS, training_dir
from test_training_support import IRIS_FEATURES, iris_export

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def load_script(algorithm):
    source = training_dir()
    sys.path.insert(0, str(source))
    try:
        spec = importlib.util.spec_from_file_location(f"script_{algorithm}", source / FRAMEWORKS[algorithm])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(source))
    return module


def test_toolkit_mapping_shape():
    encoded = rq.encode_hyperparameters({"C": 0.5, "epochs": 3, "flag": True, "none": None, "name": "svc",
                                         "grid": {"b": 2, "a": 1}, "sagemaker_program": "x.py"})
    user = rq.toolkit_hyperparameters(encoded)
    assert "sagemaker_program" not in user and user["C"] == 0.5
    assert rq.to_cmd_args(user) == ["-C", "0.5", "--epochs", "3", "--flag", "True", "--grid", "a=1,b=2",
                                    "--name", "svc", "--none", ""]


SAMPLES = {
    "sklearn": ({"C": 0.25, "estimator": "svc", "max_iter": 50, "n_estimators": 7, "gamma": "auto",
                 "random_state": 3},
                {"C": 0.25, "estimator": "svc", "max_iter": 50, "n_estimators": 7, "gamma": "auto",
                 "random_state": 3}),
    "tensorflow": ({"hidden_units": [8, 4], "epochs": 3, "batch_size": 4, "learning_rate": 0.05, "seed": 2},
                   {"hidden_units": "[8, 4]", "epochs": 3, "batch_size": 4, "learning_rate": 0.05, "seed": 2}),
}


@pytest.mark.parametrize("algorithm", ["sklearn", "tensorflow"])
def test_every_hyperparameter_reaches_the_script(tmp_path, algorithm):
    given, expected = SAMPLES[algorithm]
    export = iris_export(tmp_path / "export")
    settings = TrainingSettings(features=IRIS_FEATURES, role_arn=ROLE, s3_prefix="s3://b/p",
                                algorithm=algorithm, hyperparameters=given)
    request = plan_training(export, settings, region="us-east-1", algorithm=algorithm, job="j").request
    # What the container does with the request: hyperparameters.json -> toolkit mapping -> argv
    argv = rq.to_cmd_args(rq.toolkit_hyperparameters(request["HyperParameters"]))
    if algorithm == "sklearn":
        assert "-C" in argv  # the toolkit's spelling of a one-letter name
    args = load_script(algorithm).parse_args(argv)
    for name, value in expected.items():
        assert getattr(args, name) == value, name
    assert load_script(algorithm).labelled_csv.parse_list(args.features) == IRIS_FEATURES
    assert load_script(algorithm).labelled_csv.parse_list(args.labels) == ["setosa", "versicolor", "virginica"]


def test_sklearn_trains_with_C(tmp_path):
    export = iris_export(tmp_path / "export")
    result = train_local(tmp_path / "home", export, TrainingSettings(features=IRIS_FEATURES,
                                                                     hyperparameters={"C": 0.015}), job="c")
    model = joblib.load(f"{result.model_dir}/model.joblib")
    assert model.steps[-1][1].C == 0.015


def test_unknown_script_hyperparameter_is_refused_before_anything_runs(tmp_path):
    export = iris_export(tmp_path / "export")
    settings = TrainingSettings(features=IRIS_FEATURES, role_arn=ROLE, s3_prefix="s3://b/p",
                                hyperparameters={"estimators": 10})
    with pytest.raises(UserError) as info:
        plan_training(export, settings, region="us-east-1", algorithm="sklearn", job="j")
    assert "has no hyperparameter 'estimators'" in str(info.value) and "n_estimators" in str(info.value)
    with pytest.raises(UserError, match="has no hyperparameter 'estimators'"):
        train_local(tmp_path / "home", export, settings, job="j")
    assert not (tmp_path / "home" / "training" / "j").exists()


def test_a_script_refuses_an_unknown_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(SystemExit):
        load_script("sklearn").parse_args(["--features", "a", "--kernel", "rbf"])
    assert "--kernel" in (tmp_path / "failure").read_text()
