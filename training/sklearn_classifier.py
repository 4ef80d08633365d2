"""A scikit-learn classifier over annotate's exported CSV, in SageMaker script mode.

Training (SageMaker scikit-learn container, or `annotate train --target local`):
    python sklearn_classifier.py --features '["petal_length", "petal_width"]' [--estimator ...]
reads SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION, writes model.joblib + metadata.json to
SM_MODEL_DIR and metrics.json to SM_OUTPUT_DATA_DIR.

Serving (the same container, or `annotate deploy --target local`): model_fn, input_fn,
predict_fn and output_fn below are the hooks the scikit-learn inference container calls.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling helper, also in /opt/ml/code
import labelled_csv  # noqa: E402

MODEL_FILE = "model.joblib"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", required=True, help="feature columns: JSON array or comma-separated")
    parser.add_argument("--labels", default="", help="class names by index: JSON array or comma-separated")
    parser.add_argument("--num_classes", type=int, default=0)
    parser.add_argument("--estimator", default="logistic_regression",
                        choices=["logistic_regression", "random_forest", "svc"])
    # One-letter hyperparameters arrive as `-C` (the training toolkit's mapping), so both spellings.
    parser.add_argument("-C", "--C", dest="C", type=float, default=1.0,
                        help="inverse regularisation (logistic regression, svc)")
    parser.add_argument("--max_iter", type=int, default=2000)
    parser.add_argument("--n_estimators", type=int, default=200, help="trees (random forest)")
    parser.add_argument("--gamma", default="scale", help="RBF kernel width (svc): 'scale', 'auto' or a number")
    parser.add_argument("--random_state", type=int, default=0)
    parser.add_argument("--model-dir", "--model_dir", dest="model_dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    parser.add_argument("--output-data-dir", "--output_data_dir", dest="output_data_dir",
                        default=os.environ.get("SM_OUTPUT_DATA_DIR"))
    return parser


def parse_args(argv=None):
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # a hyperparameter this script does not define: say so rather than train without it
        labelled_csv.fail(f"unknown hyperparameters: {' '.join(unknown)}")
    return args


def build_estimator(args):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if args.estimator == "random_forest":
        return RandomForestClassifier(n_estimators=args.n_estimators, random_state=args.random_state)
    if args.estimator == "svc":
        from sklearn.svm import SVC

        gamma = args.gamma if args.gamma in ("scale", "auto") else float(args.gamma)
        # probability=True so the endpoint can return class probabilities like the other estimators
        return SVC(C=args.C, gamma=gamma, probability=True, random_state=args.random_state)
    return make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))


def train(args):
    import joblib

    features = labelled_csv.parse_list(args.features)
    if not features:
        labelled_csv.fail("no feature columns given (--features)")
    try:
        x_train, y_train, train_names = labelled_csv.read_channel(args.train, features)
        x_val, y_val, val_names = labelled_csv.read_channel(args.validation, features)
    except labelled_csv.DataError as exc:
        labelled_csv.fail(str(exc))
    if len(y_train) == 0:
        labelled_csv.fail(f"no labelled rows in the train channel ({args.train})")
    if len(set(y_train.tolist())) < 2:
        labelled_csv.fail("the train channel holds a single class; a classifier needs at least two")
    if len(y_val) and x_val.shape[1] != x_train.shape[1]:
        labelled_csv.fail(f"validation rows have {x_val.shape[1]} features, train rows {x_train.shape[1]}")
    labels = labelled_csv.class_names(args.labels, train_names, val_names, num_classes=args.num_classes)

    model = build_estimator(args)
    model.fit(x_train, y_train)

    metrics = {"train:accuracy": float(np.mean(model.predict(x_train) == y_train))}
    if len(y_val):
        metrics["validation:accuracy"] = float(np.mean(model.predict(x_val) == y_val))
    metrics["train:samples"] = float(len(y_train))
    metrics["validation:samples"] = float(len(y_val))
    labelled_csv.report_metrics(metrics, args.output_data_dir)

    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump(model, os.path.join(args.model_dir, MODEL_FILE))
    labelled_csv.write_metadata(args.model_dir, framework="sklearn", features=features, labels=labels,
                                n_features=int(x_train.shape[1]), estimator=args.estimator)


# ---- inference hooks (SageMaker scikit-learn serving container) ----

def model_fn(model_dir):
    import joblib

    return {"model": joblib.load(os.path.join(model_dir, MODEL_FILE)),
            "metadata": labelled_csv.read_metadata(model_dir)}


def input_fn(request_body, request_content_type):
    return labelled_csv.parse_request(request_body, request_content_type)


def predict_fn(input_data, model):
    metadata = model["metadata"]
    matrix = labelled_csv.rows_to_matrix(input_data, metadata.get("features", []))
    expected = metadata.get("n_features")
    if expected and matrix.shape[1] != expected:
        raise ValueError(f"each instance needs {expected} features, got {matrix.shape[1]}")
    estimator = model["model"]
    probabilities = estimator.predict_proba(matrix)
    classes = [int(c) for c in estimator.classes_]
    labels = metadata.get("labels", [])
    predictions = []
    for row in probabilities:
        best = int(np.argmax(row))
        index = classes[best]
        predictions.append({
            "label_index": index,
            "label": labels[index] if index < len(labels) else str(index),
            "score": float(row[best]),
            "probabilities": {(labels[c] if c < len(labels) else str(c)): float(p) for c, p in zip(classes, row)},
        })
    return predictions


def output_fn(prediction, accept):
    return labelled_csv.encode_response(prediction, accept)


if __name__ == "__main__":
    train(parse_args())
