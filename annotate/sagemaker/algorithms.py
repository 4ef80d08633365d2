"""What each SageMaker built-in vision algorithm accepts: its documented hyperparameters, and the
Ground Truth task type whose output it trains on.

The tables are data, transcribed from the SageMaker Developer Guide's hyperparameter pages
(cited per algorithm below). Each entry: `type` (int, float, enum, str, int_list), optional
`min` / `max` (inclusive unless `min_open` / `max_open`), `values` for enums, `required`.
Built-ins refuse hyperparameters they do not define, so a name outside its table is a user
error here, before anything is sent.
"""

from __future__ import annotations

from typing import Any, Mapping

from annotate.errors import UserError

BOOL_01 = {"type": "enum", "values": ["0", "1"]}
BOOL_TF = {"type": "enum", "values": ["True", "False"]}
POSITIVE = {"type": "int", "min": 1}
UNIT = {"type": "float", "min": 0.0, "max": 1.0}

HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    # https://docs.aws.amazon.com/sagemaker/latest/dg/IC-Hyperparameter.html
    "image-classification": {
        "num_classes": {**POSITIVE, "required": True},
        "num_training_samples": {**POSITIVE, "required": True},
        "augmentation_type": {"type": "enum", "values": ["crop", "crop_color", "crop_color_transform"]},
        "beta_1": UNIT, "beta_2": UNIT,
        "checkpoint_frequency": POSITIVE,
        "early_stopping": BOOL_TF,
        "early_stopping_min_epochs": POSITIVE,
        "early_stopping_patience": POSITIVE,
        "early_stopping_tolerance": UNIT,
        "epochs": POSITIVE,
        "eps": UNIT,
        "gamma": UNIT,
        "image_shape": {"type": "str"},  # "channels,height,width"
        "kv_store": {"type": "enum", "values": ["dist_sync", "dist_async"]},
        "learning_rate": UNIT,
        "lr_scheduler_factor": UNIT,
        "lr_scheduler_step": {"type": "int_list"},
        "mini_batch_size": POSITIVE,
        "momentum": UNIT,
        "multi_label": BOOL_01,
        "num_layers": {"type": "enum", "values": ["18", "34", "50", "101", "152", "200",
                                                  "20", "32", "44", "56", "110"]},
        "optimizer": {"type": "enum", "values": ["sgd", "adam", "rmsprop", "nag"]},
        "precision_dtype": {"type": "enum", "values": ["float32", "float16"]},
        "resize": POSITIVE,
        "top_k": {"type": "int", "min": 2},
        "use_pretrained_model": BOOL_01,
        "use_weighted_loss": BOOL_01,
        "weight_decay": UNIT,
    },
    # https://docs.aws.amazon.com/sagemaker/latest/dg/object-detection-api-config.html
    "object-detection": {
        "num_classes": {**POSITIVE, "required": True},
        "num_training_samples": {**POSITIVE, "required": True},
        "base_network": {"type": "enum", "values": ["vgg-16", "resnet-50"]},
        "early_stopping": BOOL_TF,
        "early_stopping_min_epochs": POSITIVE,
        "early_stopping_patience": POSITIVE,
        "early_stopping_tolerance": UNIT,
        "image_shape": {"type": "int", "min": 300},
        "epochs": POSITIVE,
        "freeze_layer_pattern": {"type": "str"},
        "kv_store": {"type": "enum", "values": ["dist_sync", "dist_async"]},
        "label_width": POSITIVE,
        "learning_rate": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0},
        "lr_scheduler_factor": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0, "max_open": True},
        "lr_scheduler_step": {"type": "int_list"},
        "mini_batch_size": POSITIVE,
        "momentum": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0},
        "nms_threshold": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0},
        "optimizer": {"type": "enum", "values": ["sgd", "adam", "rmsprop", "adadelta"]},
        "overlap_threshold": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0},
        "use_pretrained_model": BOOL_01,
        "weight_decay": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0, "max_open": True},
    },
    # https://docs.aws.amazon.com/sagemaker/latest/dg/segmentation-hyperparameters.html
    "semantic-segmentation": {
        "backbone": {"type": "enum", "values": ["resnet-50", "resnet-101"]},
        "use_pretrained_model": BOOL_TF,
        "algorithm": {"type": "enum", "values": ["fcn", "psp", "deeplab"]},
        # num_classes counts the background class (index 0 in Ground Truth masks).
        "num_classes": {"type": "int", "min": 2, "max": 254, "required": True},
        "num_training_samples": {**POSITIVE, "required": True},
        "base_size": {"type": "int", "min": 17},
        "crop_size": {"type": "int", "min": 17},
        "early_stopping": BOOL_TF,
        "early_stopping_min_epochs": {"type": "int", "min": 0},
        "early_stopping_patience": {"type": "int", "min": 0},
        "early_stopping_tolerance": UNIT,
        "epochs": POSITIVE,
        "gamma1": UNIT, "gamma2": UNIT,
        "learning_rate": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0},
        "lr_scheduler": {"type": "enum", "values": ["poly", "cosine", "step"]},
        "lr_scheduler_factor": UNIT,
        "lr_scheduler_step": {"type": "int_list"},
        "mini_batch_size": POSITIVE,
        "momentum": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0},
        "optimizer": {"type": "enum", "values": ["adam", "adagrad", "nag", "rmsprop", "sgd"]},
        "syncbn": BOOL_TF,
        "validation_mini_batch_size": POSITIVE,
        "weight_decay": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0, "max_open": True},
    },
}

# The Ground Truth output type (the manifest's `<attribute>-metadata.type`) each algorithm trains on.
TASK_TYPES = {
    "image-classification": {"groundtruth/image-classification"},
    "object-detection": {"groundtruth/object-detection"},
    "semantic-segmentation": {"groundtruth/semantic-segmentation"},
}


def hyperparameter_names(algorithm: str) -> list[str]:
    return sorted(HYPERPARAMETERS[algorithm])


def encode(value: Any) -> str:
    """CreateTrainingJob takes strings; TOML booleans become the spelling the algorithm uses."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def check_value(algorithm: str, name: str, value: str, *, field: str | None = None) -> str:
    """The value as sent, or a UserError saying what the algorithm accepts."""
    table = HYPERPARAMETERS[algorithm]
    where = field or f"training.hyperparameters.{name}"
    if name not in table:
        accepted = ", ".join(hyperparameter_names(algorithm))
        raise UserError(f"{algorithm} has no hyperparameter '{name}' (it accepts: {accepted})", field=where)
    spec = table[name]
    kind = spec["type"]
    if kind == "enum":
        if spec["values"] == BOOL_TF["values"] and value in ("1", "0"):  # a TOML true/false
            value = "True" if value == "1" else "False"
        if value not in spec["values"]:
            raise UserError(f"{algorithm} {name} must be one of {', '.join(spec['values'])} (got '{value}')",
                            field=where)
        return value
    if kind == "str":
        if not value.strip():
            raise UserError(f"{algorithm} {name} must not be empty", field=where)
        return value
    if kind == "int_list":
        parts = [p.strip() for p in value.split(",")]
        if not all(p.isdigit() and int(p) > 0 for p in parts):
            raise UserError(f"{algorithm} {name} must be comma-separated positive epochs, e.g. '10,20' "
                            f"(got '{value}')", field=where)
        return ",".join(parts)
    try:
        number = int(value) if kind == "int" else float(value)
    except ValueError:
        raise UserError(f"{algorithm} {name} must be {'an integer' if kind == 'int' else 'a number'} "
                        f"(got '{value}')", field=where) from None
    low, high = spec.get("min"), spec.get("max")
    if low is not None and (number < low or (spec.get("min_open") and number == low)):
        raise UserError(f"{algorithm} {name} must be {'>' if spec.get('min_open') else '≥'} {low} (got {value})",
                        field=where)
    if high is not None and (number > high or (spec.get("max_open") and number == high)):
        raise UserError(f"{algorithm} {name} must be {'<' if spec.get('max_open') else '≤'} {high} (got {value})",
                        field=where)
    return value


def check_hyperparameters(algorithm: str, values: Mapping[str, Any]) -> dict[str, str]:
    """Every value checked against the algorithm's table; required ones must be present."""
    checked = {name: check_value(algorithm, name, encode(value)) for name, value in values.items()}
    missing = [n for n, spec in HYPERPARAMETERS[algorithm].items() if spec.get("required") and n not in checked]
    if missing:
        raise UserError(f"{algorithm} needs {', '.join(missing)}", field="training.hyperparameters")
    return checked


def check_task_type(algorithm: str, manifest_type: str | None, *, file: str | None = None,
                    line: int | None = None) -> None:
    """A built-in trains only on the labels of its own task type (digits cannot train object detection)."""
    accepted = TASK_TYPES[algorithm]
    if manifest_type not in accepted:
        raise UserError(f"{algorithm} trains on {' or '.join(sorted(accepted))} labels, but the batch's labels are "
                        f"{manifest_type or 'of no Ground Truth type'}: choose "
                        f"{_algorithm_for(manifest_type) or 'sklearn or tensorflow'}",
                        file=file, line=line, field="algorithm")


def _algorithm_for(manifest_type: str | None) -> str | None:
    for algorithm, types in TASK_TYPES.items():
        if manifest_type in types:
            return f"--algorithm {algorithm}"
    return None
