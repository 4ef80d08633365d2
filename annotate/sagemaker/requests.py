"""The exact CreateTrainingJob bodies annotate sends, built without touching AWS.

Framework (script-mode) jobs carry their hyperparameters the way the SageMaker Python SDK
sends them: every value JSON-encoded into a string, plus `sagemaker_program` and
`sagemaker_submit_directory`. The local runner decodes the very same dict, so a job runs
the same script with the same arguments in both places.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from annotate.errors import UserError
from annotate.sagemaker import algorithms
from annotate.sagemaker.settings import BUILTINS, FRAMEWORKS, check_algorithm, image_uri

MAX_JOB_NAME = 63
# MetricDefinitions match the `name=value;` lines the training scripts print.
METRIC_DEFINITIONS = [
    {"Name": name, "Regex": f"{name}=([0-9.eE+-]+);"}
    for name in ("train:accuracy", "validation:accuracy", "validation:loss")
]

# What each built-in needs besides num_classes and num_training_samples; values are strings,
# as CreateTrainingJob requires. Small-data defaults: transfer learning from pretrained nets.
# Every name here is in the algorithm's documented table (annotate.sagemaker.algorithms).
BUILTIN_DEFAULTS: dict[str, dict[str, str]] = {
    "image-classification": {"image_shape": "3,224,224", "num_layers": "18", "use_pretrained_model": "1",
                             "epochs": "10", "learning_rate": "0.001", "mini_batch_size": "32",
                             "augmentation_type": "crop_color_transform"},
    "object-detection": {"base_network": "resnet-50", "use_pretrained_model": "1", "image_shape": "512",
                         "epochs": "30", "learning_rate": "0.001", "lr_scheduler_step": "10,20",
                         "lr_scheduler_factor": "0.1", "mini_batch_size": "16", "optimizer": "sgd",
                         "momentum": "0.9", "weight_decay": "0.0005", "label_width": "350"},
    "semantic-segmentation": {"backbone": "resnet-50", "algorithm": "fcn", "use_pretrained_model": "True",
                              "epochs": "10", "learning_rate": "0.0001", "optimizer": "rmsprop",
                              "mini_batch_size": "16", "crop_size": "240", "early_stopping": "True"},
}


def job_name(batch: str, algorithm: str, now: datetime | None = None) -> str:
    """A unique, valid training job name: <batch>-<algorithm>-<UTC timestamp>.

    SageMaker job names allow [a-zA-Z0-9-], at most 63 characters, and cannot be reused.
    """
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    short = {"image-classification": "ic", "object-detection": "od", "semantic-segmentation": "ss",
             "tensorflow": "tf"}.get(algorithm, algorithm)
    stem = re.sub(r"[^a-zA-Z0-9-]+", "-", batch).strip("-") or "batch"
    stem = stem[: MAX_JOB_NAME - len(short) - len(stamp) - 2].rstrip("-")
    return f"{stem}-{short}-{stamp}"


def encode_hyperparameters(values: Mapping[str, Any]) -> dict[str, str]:
    """JSON-encode every value, as the SageMaker SDK does for framework estimators."""
    return {str(k): json.dumps(v) for k, v in values.items()}


def decode_hyperparameters(encoded: Mapping[str, str]) -> dict[str, Any]:
    """What the training toolkit does on the container side: JSON-decode each value when it can."""
    decoded = {}
    for key, value in encoded.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def toolkit_hyperparameters(encoded: Mapping[str, str]) -> dict[str, Any]:
    """The user hyperparameters as the SageMaker training toolkit hands them to the script: each
    value of hyperparameters.json JSON-decoded (left as text when it is not JSON), and the
    toolkit's own `sagemaker_*` settings taken out."""
    return {k: v for k, v in decode_hyperparameters(encoded).items() if not k.startswith("sagemaker_")}


def _arg_text(value: Any) -> str:
    # The toolkit writes None as an empty string, bytes as latin-1 text, everything else as str().
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The script's command line as the SageMaker training toolkit builds it: keys sorted, each
    `--name value`, except that a one-letter name becomes `-n` (so `C` arrives as `-C`); a
    mapping value becomes `k=v,k=v`. Keys starting with `sagemaker_` never reach the script."""
    args = []
    for key in sorted(hyperparameters):
        if key.startswith("sagemaker_"):
            continue
        name = _arg_text(key)
        value = hyperparameters[key]
        if isinstance(value, Mapping):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        args += [(f"--{name}" if len(name) > 1 else f"-{name}") if name else "", _arg_text(value)]
    return args


def option_name(key: str) -> str:
    """The option string a hyperparameter arrives as (see to_cmd_args)."""
    return f"--{key}" if len(key) > 1 else f"-{key}"


def script_options(algorithm: str, source_dir: Path) -> set[str]:
    """The option strings a training script's parser defines (its build_parser())."""
    import importlib.util
    import sys

    script = Path(source_dir) / FRAMEWORKS[algorithm]
    spec = importlib.util.spec_from_file_location(f"annotate_script_{algorithm}", script)
    module = importlib.util.module_from_spec(spec)
    added = str(source_dir) not in sys.path
    if added:
        sys.path.insert(0, str(source_dir))
    try:
        spec.loader.exec_module(module)
    finally:
        if added:
            sys.path.remove(str(source_dir))
    return {option for action in module.build_parser()._actions for option in action.option_strings}


def check_script_hyperparameters(algorithm: str, extra: Mapping[str, Any], source_dir: Path) -> None:
    """A script-mode hyperparameter the script does not define would be dropped on the way in
    (or end the job): refuse it here, naming what the script accepts."""
    options = script_options(algorithm, source_dir)
    own = {"--features", "--labels", "--num_classes", "--model_dir", "--model-dir", "--train", "--validation",
           "--output-data-dir", "--output_data_dir", "--sm-model-dir", "-h", "--help"}
    for key in extra:
        if option_name(str(key)) not in options:
            accepted = sorted(o.lstrip("-") for o in options - own)
            raise UserError(f"{algorithm} ({FRAMEWORKS[algorithm]}) has no hyperparameter '{key}' "
                            f"(it accepts: {', '.join(accepted)})", field=f"training.hyperparameters.{key}")


def script_hyperparameters(features: list[str], labels: list[str], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The user hyperparameters a framework script gets. Lists travel as JSON text so that the
    toolkit's str() of each value stays parseable."""
    if not features:
        raise UserError("no features to train on: set [training] features in batch.toml", field="training.features")
    values: dict[str, Any] = {"features": json.dumps(list(features))}
    if labels:
        values["labels"] = json.dumps(list(labels))
        values["num_classes"] = len(labels)
    for key, value in extra.items():
        values[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return values


def builtin_hyperparameters(algorithm: str, num_classes: int, num_training_samples: int,
                            extra: Mapping[str, Any], *, image_sizes: list[tuple[int, int]] | None = None,
                            num_validation_samples: int | None = None) -> dict[str, str]:
    """The HyperParameters of a built-in job: defaults, the user's (checked against the algorithm's
    documented table), and those only the batch can tell.

    image_sizes are the (width, height) of the training images when annotate can read them (local
    files); None when they are in S3 and unseen.
    """
    user = {name: algorithms.check_value(algorithm, name, algorithms.encode(value)) for name, value in extra.items()}
    values = {**BUILTIN_DEFAULTS[algorithm], **user}
    # A batch cannot be larger than the set it is drawn from (the algorithms fail otherwise).
    values["mini_batch_size"] = str(min(int(values["mini_batch_size"]), num_training_samples))
    if algorithm == "semantic-segmentation" and num_validation_samples:
        values["validation_mini_batch_size"] = str(min(int(values.get("validation_mini_batch_size", 4)),
                                                       num_validation_samples))
    if algorithm == "image-classification":
        values.update(_image_classification_shape(values, user, image_sizes))
    values["num_classes"] = str(num_classes)
    values["num_training_samples"] = str(num_training_samples)
    return algorithms.check_hyperparameters(algorithm, values)


PRETRAINED_SIDE = 224  # pretrained image-classification networks take 224 x 224 input only


def _image_classification_shape(values: Mapping[str, str], user: Mapping[str, str],
                                image_sizes: list[tuple[int, int]] | None) -> dict[str, str]:
    """image_shape from the images; `resize` when they are smaller than the network's input.

    The algorithm crops image_shape out of each image, so an image smaller than it fails the
    job; `resize` scales each image's shortest side up first.
    """
    shortest = min((min(w, h) for w, h in image_sizes), default=None) if image_sizes else None
    out: dict[str, str] = {}
    if values.get("use_pretrained_model") == "1":
        shape = f"3,{PRETRAINED_SIDE},{PRETRAINED_SIDE}"
        if "image_shape" in user and user["image_shape"].replace(" ", "") != shape:
            raise UserError(f"image-classification with use_pretrained_model=1 takes image_shape {shape} only "
                            f"(got '{user['image_shape']}'); set use_pretrained_model = 0 to train from scratch",
                            field="training.hyperparameters.image_shape")
        out["image_shape"] = shape
        side = PRETRAINED_SIDE
    else:
        if "image_shape" in user:
            shape = user["image_shape"].replace(" ", "")
        elif image_sizes:
            width = min(w for w, _ in image_sizes)
            height = min(h for _, h in image_sizes)
            shape = f"3,{height},{width}"
        else:
            shape = values["image_shape"]
        parts = shape.split(",")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise UserError(f"image_shape must be 'channels,height,width' (got '{shape}')",
                            field="training.hyperparameters.image_shape")
        out["image_shape"] = shape
        side = max(int(parts[1]), int(parts[2]))
    if "resize" in user:
        if int(user["resize"]) < side:
            raise UserError(f"resize {user['resize']} is smaller than the network's input ({side} px)",
                            field="training.hyperparameters.resize")
    elif shortest is None or shortest < side:
        out["resize"] = str(side)  # unseen (S3) or too small: scale the shortest side up to the input
    return out


def builtin_channel(name: str, manifest_uri: str, attribute_names: list[str]) -> dict[str, Any]:
    """A channel over an augmented manifest: Pipe mode, RecordIO-wrapped records."""
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {
            "S3DataType": "AugmentedManifestFile",
            "S3Uri": manifest_uri,
            "S3DataDistributionType": "FullyReplicated",
            "AttributeNames": list(attribute_names),
        }},
        "ContentType": "application/x-recordio",
        "RecordWrapperType": "RecordIO",
        "CompressionType": "None",
    }


def csv_channel(name: str, prefix_uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": prefix_uri,
                                        "S3DataDistributionType": "FullyReplicated"}},
        "ContentType": "text/csv",
        "CompressionType": "None",
    }


def _common(name: str, role_arn: str, output_uri: str, instance_type: str, max_runtime: int) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "RoleArn": role_arn,
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }


def builtin_training_request(*, name: str, algorithm: str, region: str, role_arn: str, output_uri: str,
                             train_manifest_uri: str, validation_manifest_uri: str | None,
                             attribute_names: list[str], num_classes: int, num_training_samples: int,
                             instance_type: str, hyperparameters: Mapping[str, Any] | None = None,
                             image_sizes: list[tuple[int, int]] | None = None,
                             num_validation_samples: int | None = None, max_runtime: int = 86400) -> dict[str, Any]:
    """CreateTrainingJob for a built-in vision algorithm reading Ground Truth's augmented manifest."""
    check_algorithm(algorithm)
    if algorithm not in BUILTINS:
        raise UserError(f"'{algorithm}' is not a SageMaker built-in algorithm", field="algorithm")
    channels = [builtin_channel("train", train_manifest_uri, attribute_names)]
    if validation_manifest_uri:
        channels.append(builtin_channel("validation", validation_manifest_uri, attribute_names))
    request = _common(name, role_arn, output_uri, instance_type, max_runtime)
    request.update({
        "AlgorithmSpecification": {"TrainingImage": image_uri(algorithm, region), "TrainingInputMode": "Pipe"},
        "InputDataConfig": channels,
        "HyperParameters": builtin_hyperparameters(algorithm, num_classes, num_training_samples,
                                                   hyperparameters or {}, image_sizes=image_sizes,
                                                   num_validation_samples=num_validation_samples),
    })
    return request


def framework_training_request(*, name: str, algorithm: str, region: str, role_arn: str, output_uri: str,
                               train_uri: str, validation_uri: str | None, source_uri: str,
                               script_values: Mapping[str, Any], instance_type: str,
                               max_runtime: int = 86400) -> dict[str, Any]:
    """CreateTrainingJob for a script-mode job (scikit-learn or TensorFlow container)."""
    check_algorithm(algorithm)
    if algorithm not in FRAMEWORKS:
        raise UserError(f"'{algorithm}' is not a script-mode framework", field="algorithm")
    values = dict(script_values)
    values.update({
        "sagemaker_program": FRAMEWORKS[algorithm],
        "sagemaker_submit_directory": source_uri,
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": name,
        "sagemaker_region": region,
    })
    if algorithm == "tensorflow":
        # The SDK's TensorFlow estimator always passes model_dir (checkpoints in S3).
        values["model_dir"] = f"{output_uri.rstrip('/')}/{name}/model"
    channels = [csv_channel("train", train_uri)]
    if validation_uri:
        channels.append(csv_channel("validation", validation_uri))
    request = _common(name, role_arn, output_uri, instance_type, max_runtime)
    request.update({
        "AlgorithmSpecification": {"TrainingImage": image_uri(algorithm, region), "TrainingInputMode": "File",
                                   "MetricDefinitions": METRIC_DEFINITIONS},
        "InputDataConfig": channels,
        "HyperParameters": encode_hyperparameters(values),
    })
    return request


def source_tarball(source_dir: Path) -> bytes:
    """sourcedir.tar.gz: the training scripts, flat, as the SDK packs `source_dir`.

    Deterministic (sorted names, zero mtimes) so the same scripts give the same bytes.
    """
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w") as archive:
        for path in sorted(source_dir.iterdir()):
            if path.suffix != ".py" or not path.is_file():
                continue
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
