"""Run a training script locally exactly as SageMaker's framework containers run it.

The work directory mirrors /opt/ml: input/config/hyperparameters.json (JSON-encoded values,
as CreateTrainingJob sends them), input/data/<channel>/, code/ (the source tarball,
unpacked), model/, output/data/. The script runs as a subprocess with the same SM_*
environment and the command line the training toolkit would build.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from annotate.errors import UserError
from annotate.sagemaker import requests as rq
from annotate.sagemaker.data import export_path, export_value, summarise_csv
from annotate.sagemaker.settings import (BUILTINS, DEFAULT_ALGORITHM, FRAMEWORKS, TrainingSettings,
                                         check_algorithm, training_dir)

JOB_RECORD = "job.json"


class TrainingFailed(Exception):
    """A training job ran and failed; the message is its failure reason."""


@dataclass
class TrainingResult:
    job_name: str
    algorithm: str
    target: str
    metrics: dict[str, float] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    label_attribute: str | None = None
    work_dir: str | None = None
    model_dir: str | None = None
    model_artifact: str | None = None  # local model.tar.gz or S3 URI
    program: str | None = None
    source_dir: str | None = None
    region: str | None = None
    status: str = "Completed"
    batch: str | None = None  # the batch whose labels it learned

    @property
    def model_accuracy(self) -> float | None:
        """Validation accuracy (train accuracy when there was no validation split)."""
        return self.metrics.get("validation:accuracy", self.metrics.get("train:accuracy"))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_accuracy"] = self.model_accuracy
        return data


def jobs_dir(home: Path) -> Path:
    return Path(home) / "training"


def save_job(home: Path, result: TrainingResult) -> Path:
    path = jobs_dir(home) / result.job_name / JOB_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
    return path


def load_job(home: Path, job_name: str) -> TrainingResult:
    path = jobs_dir(home) / job_name / JOB_RECORD
    if not path.exists():
        known = sorted(p.parent.name for p in jobs_dir(home).glob(f"*/{JOB_RECORD}"))
        raise UserError(f"no training job '{job_name}' in {jobs_dir(home)}"
                        + (f" (known: {', '.join(known)})" if known else ""), field="job")
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("model_accuracy", None)
    return TrainingResult(**data)


def latest_job(home: Path, batch: str | None = None) -> str:
    """The most recently trained job (of a batch, when given)."""
    records = sorted(jobs_dir(home).glob(f"*/{JOB_RECORD}"), key=lambda p: p.stat().st_mtime)
    if batch:
        records = [p for p in records if p.parent.name.startswith(f"{batch}-")]
    if not records:
        raise UserError("no trained model yet: run `annotate train` first", field="job")
    return records[-1].parent.name


def _environment(work: Path, channels: list[str], hyperparameters: dict[str, Any], program: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SM_MODEL_DIR": str(work / "model"),
        "SM_OUTPUT_DATA_DIR": str(work / "output" / "data"),
        "SM_OUTPUT_DIR": str(work / "output"),
        "SM_INPUT_DIR": str(work / "input"),
        "SM_INPUT_CONFIG_DIR": str(work / "input" / "config"),
        "SM_CHANNELS": json.dumps(channels),
        "SM_HPS": json.dumps({k: v for k, v in hyperparameters.items() if not k.startswith("sagemaker_")}),
        "SM_USER_ENTRY_POINT": program,
        "SM_MODULE_DIR": str(work / "code"),
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_CURRENT_HOST": "algo-1",
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_NUM_GPUS": "0",
        "PYTHONUNBUFFERED": "1",
    })
    for channel in channels:
        env[f"SM_CHANNEL_{channel.upper()}"] = str(work / "input" / "data" / channel)
    return env


def train_local(home: Path, export: Any, settings: TrainingSettings | dict, *, algorithm: str | None = None,
                batch: str = "batch", job: str | None = None, python: str | None = None,
                echo: Callable[[str], None] | None = None) -> TrainingResult:
    """Train on an export's CSVs with a training/ script, locally, and keep the model.

    `export` is an ExportResult (or a dict with the same keys): train_csv, validation_csv,
    labels, label_attribute. `echo` receives each line the script prints.
    Returns the metrics (result.model_accuracy) and where the model and model.tar.gz are.
    """
    if isinstance(settings, dict):
        settings = TrainingSettings.from_config(settings)
    algorithm = check_algorithm(algorithm or settings.algorithm or DEFAULT_ALGORITHM)
    if algorithm in BUILTINS:
        raise UserError(f"'{algorithm}' is a SageMaker built-in algorithm and cannot run locally: "
                        "use --target aws, or --algorithm sklearn|tensorflow", field="algorithm")
    if algorithm == "tensorflow":
        _require_tensorflow(python)
    train_csv = export_path(export, "train_csv") or export_path(export, "csv")
    if train_csv is None:
        raise UserError("the export has no CSV: export with the csv format first")
    validation_csv = export_path(export, "validation_csv")
    train = summarise_csv(train_csv, settings.features)
    if train.labelled_rows == 0:
        raise UserError("no labelled items to train on", file=str(train_csv))
    validation = summarise_csv(validation_csv, settings.features) if validation_csv else None
    labels = list(export_value(export, "labels", [])) or _names(train, validation)

    rq.check_script_hyperparameters(algorithm, settings.hyperparameters_for(algorithm), training_dir())
    name = job or rq.job_name(batch, algorithm)
    work = jobs_dir(home) / name
    if work.exists():
        raise UserError(f"training job '{name}' already exists in {work}", field="job")
    source = training_dir()
    program = FRAMEWORKS[algorithm]
    channels = ["train"] + (["validation"] if validation else [])
    encoded = rq.encode_hyperparameters({
        **rq.script_hyperparameters(settings.features, labels, settings.hyperparameters_for(algorithm)),
        "sagemaker_program": program, "sagemaker_submit_directory": str(source),
    })

    for sub in ("input/config", "input/data/train", "model", "output/data", "code"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(train_csv, work / "input/data/train/train.csv")
    if validation:
        (work / "input/data/validation").mkdir(parents=True, exist_ok=True)
        shutil.copy(validation_csv, work / "input/data/validation/validation.csv")
    (work / "input/config/hyperparameters.json").write_text(json.dumps(encoded, indent=2), encoding="utf-8")
    (work / "input/config/resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}), encoding="utf-8")
    # The container unpacks sagemaker_submit_directory into /opt/ml/code: do the same.
    with tarfile.open(fileobj=io.BytesIO(rq.source_tarball(source)), mode="r:gz") as archive:
        archive.extractall(work / "code", filter="data")

    decoded = rq.decode_hyperparameters(encoded)
    command = [python or sys.executable, program, *rq.to_cmd_args(rq.toolkit_hyperparameters(encoded))]
    env = _environment(work, channels, decoded, program)
    result = TrainingResult(job_name=name, algorithm=algorithm, target="local", labels=labels,
                            features=list(settings.features), label_attribute=export_value(export, "label_attribute"),
                            work_dir=str(work), model_dir=str(work / "model"), program=program,
                            source_dir=str(work / "code"), status="InProgress", batch=batch)
    save_job(home, result)
    returncode = _run(command, work / "code", env, work / "output" / "training.log", echo)
    if returncode != 0:
        failure = work / "output" / "failure"
        reason = failure.read_text(encoding="utf-8").strip() if failure.exists() else _tail(work / "output" / "training.log")
        result.status = "Failed"
        save_job(home, result)
        raise TrainingFailed(f"training job {name} failed (exit {returncode}): {reason}")

    metrics_file = work / "output" / "data" / "metrics.json"
    result.metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else {}
    result.model_artifact = str(_pack_model(work))
    result.status = "Completed"
    save_job(home, result)
    return result


def _names(train, validation) -> list[str]:
    names = dict(train.names)
    if validation:
        names.update(validation.names)
    return [names.get(i, str(i)) for i in range(max(names) + 1)] if names else []


def _require_tensorflow(python: str | None) -> None:
    probe = subprocess.run([python or sys.executable, "-c", "import tensorflow"], capture_output=True)
    if probe.returncode != 0:
        raise UserError("TensorFlow is not installed: pip install 'annotate[tensorflow]' "
                        "(or use --algorithm sklearn)", field="algorithm")


def _run(command: list[str], cwd: Path, env: dict[str, str], log_path: Path,
         echo: Callable[[str], None] | None) -> int:
    with log_path.open("w", encoding="utf-8") as log, subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if echo:
                echo(line.rstrip("\n"))
        return proc.wait()


def _tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(encoding="utf-8").strip().splitlines() if path.exists() else []
    return " | ".join(text[-lines:]) or "no output"


def _pack_model(work: Path) -> Path:
    """model.tar.gz of the model directory's contents, as SageMaker uploads it."""
    artifact = work / "output" / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as archive:
        for path in sorted((work / "model").iterdir()):
            archive.add(path, arcname=path.name)
    return artifact


def train_local_from_export(ws, batch_name: str, export: Any, *, algorithm: str | None = None,
                            settings: TrainingSettings | dict | None = None, **options: Any) -> TrainingResult:
    """train_local for a stored batch: its [training] settings come from the store unless given."""
    if settings is None:
        from annotate.sagemaker.settings import batch_training_settings

        settings = batch_training_settings(ws, batch_name)
    return train_local(ws.home, export, settings, algorithm=algorithm, batch=batch_name, **options)
