"""Training, deployment and prediction: SageMaker (built-in algorithms and script mode) or local.

Library first: each `annotate train|deploy|predict|teardown` command is one function here.

    train_local(home, export, settings)            -> TrainingResult (.model_accuracy)
    plan_training(export, settings, region=...)    -> TrainingPlan (uploads + CreateTrainingJob)
    run_training(plan, session, home)              -> TrainingResult (waits, FailureReason on failure)
    prepare_deploy_aws / deploy_aws, deploy_local  -> endpoint record
    predict(home, endpoint, inputs)                -> [Prediction]
    teardown_steps / teardown                      -> what went
    segmentation_channels(manifest, out_dir)       -> the semantic-segmentation channel layout

The built-in algorithms' documented hyperparameters (names, types, ranges, required ones) and
the task type each trains on are data in annotate.sagemaker.algorithms.
"""

from annotate.sagemaker.aws import TrainingPlan, plan_training, require_credentials, run_training
from annotate.sagemaker.deploy import (DeployPlan, TeardownStep, deploy_aws, deploy_local, plan_deploy,
                                       prepare_deploy_aws, teardown, teardown_steps)
from annotate.sagemaker.local import (TrainingFailed, TrainingResult, latest_job, load_job, train_local,
                                     train_local_from_export)
from annotate.sagemaker.predict import Prediction, count_objects, draw_boxes, predict
from annotate.sagemaker.segmentation import SegmentationChannels, segmentation_channels
from annotate.sagemaker.settings import (ALGORITHMS, BUILTINS, FRAMEWORKS, TrainingSettings,
                                         batch_training_settings, image_uri)

__all__ = [
    "ALGORITHMS", "BUILTINS", "FRAMEWORKS", "DeployPlan", "Prediction", "SegmentationChannels", "TeardownStep",
    "TrainingFailed", "TrainingPlan", "TrainingResult", "TrainingSettings", "batch_training_settings",
    "count_objects", "deploy_aws", "deploy_local", "draw_boxes", "image_uri", "latest_job", "load_job",
    "plan_deploy", "plan_training", "predict", "prepare_deploy_aws", "require_credentials", "run_training",
    "segmentation_channels", "teardown", "teardown_steps", "train_local", "train_local_from_export",
]
