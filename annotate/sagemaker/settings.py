"""Training settings, the algorithms annotate knows, and where their container images live."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from annotate.errors import UserError

# Script-mode frameworks: (entry point in training/, runs locally too)
FRAMEWORKS = {"sklearn": "sklearn_classifier.py", "tensorflow": "tf_classifier.py"}
# SageMaker built-in algorithms fed by an augmented manifest in Pipe mode.
BUILTINS = ("image-classification", "object-detection", "semantic-segmentation")
ALGORITHMS = tuple(FRAMEWORKS) + BUILTINS
DEFAULT_ALGORITHM = "sklearn"

# Registry account of the built-in vision algorithms (the same for all three), per region.
# From the SageMaker Python SDK's image_uri_config (image-classification.json).
BUILTIN_REGISTRIES = {
    "ap-east-1": "286214385809", "ap-northeast-1": "501404015308", "ap-northeast-2": "306986355934",
    "ap-south-1": "991648021394", "ap-southeast-1": "475088953585", "ap-southeast-2": "544295431143",
    "ca-central-1": "469771592824", "cn-north-1": "390948362332", "cn-northwest-1": "387376663083",
    "eu-central-1": "813361260812", "eu-north-1": "669576153137", "eu-west-1": "685385470294",
    "eu-west-2": "644912444149", "eu-west-3": "749696950732", "me-south-1": "249704162688",
    "sa-east-1": "855470959533", "us-east-1": "811284229777", "us-east-2": "825641698319",
    "us-gov-west-1": "226302683700", "us-west-1": "632365934929", "us-west-2": "433757028032",
}
# sagemaker-scikit-learn (training and inference share one image).
SKLEARN_REGISTRIES = {
    "af-south-1": "510948584623", "ap-east-1": "651117190479", "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698", "ap-northeast-3": "867004704886", "ap-south-1": "720646828776",
    "ap-southeast-1": "121021644041", "ap-southeast-2": "783357654285", "ca-central-1": "341280168497",
    "eu-central-1": "492215442770", "eu-north-1": "662702820516", "eu-west-1": "141502667606",
    "eu-west-2": "764974769150", "eu-west-3": "659782779980", "eu-south-1": "978288397137",
    "me-south-1": "801668240914", "sa-east-1": "737474898029", "us-east-1": "683313688378",
    "us-east-2": "257758044811", "us-west-1": "746614075791", "us-west-2": "246618743249",
}
SKLEARN_TAG = "1.2-1-cpu-py3"
# AWS Deep Learning Containers (tensorflow-training / tensorflow-inference): one account in
# most regions, a few opt-in regions have their own.
DLC_ACCOUNT = "763104351884"
DLC_REGION_ACCOUNTS = {"af-south-1": "626614931356", "ap-east-1": "871362719292",
                       "eu-south-1": "692866216735", "me-south-1": "217643126080"}
TF_TRAINING_TAG = "2.13-cpu-py310"
TF_INFERENCE_TAG = "2.13-cpu"

DEFAULT_FRAMEWORK_INSTANCE = "ml.m5.large"
DEFAULT_BUILTIN_INSTANCE = "ml.p3.2xlarge"  # the vision built-ins train on GPU only
DEFAULT_INFERENCE_INSTANCE = "ml.m5.large"


def check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise UserError(f"unknown algorithm '{algorithm}': choose one of {', '.join(ALGORITHMS)}", field="algorithm")
    return algorithm


def _registry(table: Mapping[str, str], region: str, what: str) -> str:
    try:
        return table[region]
    except KeyError:
        raise UserError(f"no {what} image known for region '{region}' (known: {', '.join(sorted(table))})",
                        field="region") from None


def image_uri(algorithm: str, region: str, scope: str = "training") -> str:
    """The container image for an algorithm in a region; scope is 'training' or 'inference'."""
    check_algorithm(algorithm)
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    if algorithm in BUILTINS:
        account = _registry(BUILTIN_REGISTRIES, region, algorithm)
        return f"{account}.dkr.ecr.{region}.{suffix}/{algorithm}:1"
    if algorithm == "sklearn":
        account = _registry(SKLEARN_REGISTRIES, region, "scikit-learn")
        return f"{account}.dkr.ecr.{region}.{suffix}/sagemaker-scikit-learn:{SKLEARN_TAG}"
    account = DLC_REGION_ACCOUNTS.get(region, DLC_ACCOUNT)
    if scope == "training":
        return f"{account}.dkr.ecr.{region}.{suffix}/tensorflow-training:{TF_TRAINING_TAG}"
    return f"{account}.dkr.ecr.{region}.{suffix}/tensorflow-inference:{TF_INFERENCE_TAG}"


def training_dir() -> Path:
    """Where the training scripts live: ANNOTATE_TRAINING_DIR, else the repository's training/, which
    `pip install .` ships as the package annotate.training."""
    from importlib import resources

    override = os.environ.get("ANNOTATE_TRAINING_DIR")
    path = Path(override) if override else Path(str(resources.files("annotate.training")))
    if not (path / FRAMEWORKS["sklearn"]).exists():
        raise UserError(f"training scripts not found in {path} (set ANNOTATE_TRAINING_DIR)")
    return path


@dataclass
class TrainingSettings:
    """The [training] table of a batch.toml."""

    features: list[str] = field(default_factory=list)
    algorithm: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    instance_type: str | None = None
    role_arn: str | None = None
    s3_prefix: str | None = None

    def hyperparameters_for(self, algorithm: str) -> dict[str, Any]:
        """The hyperparameters meant for `algorithm`.

        Plain keys belong to the batch's own algorithm ([training] algorithm, else sklearn); a
        sub-table named after an algorithm (`[training.hyperparameters.object-detection]`) to that
        one. So a script's `estimator = "svc"` never reaches a built-in job trained with --algorithm.
        """
        own = self.algorithm or DEFAULT_ALGORITHM
        values = {k: v for k, v in self.hyperparameters.items() if k not in ALGORITHMS} if algorithm == own else {}
        table = self.hyperparameters.get(algorithm)
        if table is not None:
            if not isinstance(table, Mapping):
                raise UserError(f"hyperparameters.{algorithm} must be a table of that algorithm's hyperparameters",
                                field=f"training.hyperparameters.{algorithm}")
            values.update(table)
        return values

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, *, file: str | None = None) -> "TrainingSettings":
        """From a parsed batch.toml (the whole document or just its [training] table)."""
        config = dict(config or {})
        table = config.get("training", config if "features" in config or "algorithm" in config else {})
        if not isinstance(table, Mapping):
            raise UserError("[training] must be a table", file=file, field="training")
        features = table.get("features", [])
        if isinstance(features, str):
            features = [features]
        if not isinstance(features, list) or not all(isinstance(f, str) and f for f in features):
            raise UserError("features must be a list of CSV column names", file=file, field="training.features")
        hyperparameters = table.get("hyperparameters", {})
        if not isinstance(hyperparameters, Mapping):
            raise UserError("hyperparameters must be a table", file=file, field="training.hyperparameters")
        algorithm = table.get("algorithm")
        if algorithm is not None:
            check_algorithm(algorithm)
        s3_prefix = table.get("s3_prefix")
        if s3_prefix is not None and not str(s3_prefix).startswith("s3://"):
            raise UserError(f"s3_prefix must start with s3:// (got '{s3_prefix}')", file=file,
                            field="training.s3_prefix")
        return cls(features=list(features), algorithm=algorithm, hyperparameters=dict(hyperparameters),
                   instance_type=table.get("instance_type"), role_arn=table.get("role_arn"), s3_prefix=s3_prefix)


def batch_training_settings(ws, batch_name: str) -> TrainingSettings:
    """The training settings of a stored batch (CLI use; the library takes config dicts)."""
    try:
        from annotate.store import Store
    except ImportError as exc:  # the store is another part of annotate; say what is missing
        raise UserError(f"cannot read batch settings: annotate.store is unavailable ({exc})") from exc
    batch = Store(ws.store_path).get_batch(batch_name)
    if not batch:
        raise UserError(f"no batch named '{batch_name}'", field="batch")
    return TrainingSettings.from_config(batch.get("config") or {}, file=batch.get("path"))
