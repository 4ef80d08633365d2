"""A TensorFlow/Keras DNN classifier over annotate's exported CSV, in SageMaker script mode.

The iris DNN of the MTurk + SageMaker tutorial (hidden layers 10, 20, 10), written for
Keras instead of the retired tf.estimator API. Training reads SM_CHANNEL_TRAIN /
SM_CHANNEL_VALIDATION and writes a SavedModel to SM_MODEL_DIR/1/ — the layout the
TensorFlow Serving container loads (version directories under the model) — plus
metadata.json (features, class names) and metrics.json in SM_OUTPUT_DATA_DIR.

Serving: on SageMaker, TensorFlow Serving answers {"instances": [...]} with
{"predictions": [[class probabilities]]}. The hooks below (model_fn ... output_fn) give
`annotate deploy --target local` the same answer from the same SavedModel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling helper, also in /opt/ml/code
import labelled_csv  # noqa: E402

MODEL_VERSION = "1"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", required=True, help="feature columns: JSON array or comma-separated")
    parser.add_argument("--labels", default="", help="class names by index: JSON array or comma-separated")
    parser.add_argument("--num_classes", type=int, default=0)
    parser.add_argument("--hidden_units", default="[10, 20, 10]", help="JSON array of layer widths")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    # The SageMaker SDK's TensorFlow estimator adds --model_dir (an S3 path for checkpoints);
    # the SavedModel always goes to SM_MODEL_DIR, which the container uploads.
    parser.add_argument("--model_dir", default=None)
    parser.add_argument("--sm-model-dir", dest="sm_model_dir", default=os.environ.get("SM_MODEL_DIR", "model"))
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


def build_model(tf, n_features, n_classes, hidden_units, x_train, learning_rate):
    normalise = tf.keras.layers.Normalization(axis=-1)
    normalise.adapt(x_train)  # the scaling travels inside the SavedModel
    layers = [tf.keras.Input(shape=(n_features,), name="features"), normalise]
    layers += [tf.keras.layers.Dense(units, activation="relu") for units in hidden_units]
    layers.append(tf.keras.layers.Dense(n_classes, activation="softmax", name="probabilities"))
    model = tf.keras.Sequential(layers)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def export_saved_model(tf, model, path):
    if hasattr(model, "export"):  # Keras 3: a serving-only SavedModel
        model.export(path, verbose=False)
    else:  # Keras 2 (TF <= 2.15)
        tf.saved_model.save(model, path)


def train(args):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
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
    labels = labelled_csv.class_names(args.labels, train_names, val_names, num_classes=args.num_classes)
    n_classes = max(len(labels), int(y_train.max()) + 1, int(y_val.max()) + 1 if len(y_val) else 0)

    model = build_model(tf, x_train.shape[1], n_classes, json.loads(args.hidden_units), x_train, args.learning_rate)
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)

    metrics = {"train:accuracy": float(model.evaluate(x_train, y_train, verbose=0)[1])}
    if len(y_val):
        loss, accuracy = model.evaluate(x_val, y_val, verbose=0)
        metrics["validation:accuracy"] = float(accuracy)
        metrics["validation:loss"] = float(loss)
    metrics["train:samples"] = float(len(y_train))
    metrics["validation:samples"] = float(len(y_val))
    labelled_csv.report_metrics(metrics, args.output_data_dir)

    export_saved_model(tf, model, os.path.join(args.sm_model_dir, MODEL_VERSION))
    labelled_csv.write_metadata(args.sm_model_dir, framework="tensorflow", features=features, labels=labels,
                                n_features=int(x_train.shape[1]))


# ---- inference hooks (local endpoint; the TensorFlow Serving container needs none) ----

def model_fn(model_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(model_dir, MODEL_VERSION))
    return {"serve": loaded.signatures["serving_default"], "metadata": labelled_csv.read_metadata(model_dir),
            "tf": tf}


def input_fn(request_body, request_content_type):
    return labelled_csv.parse_request(request_body, request_content_type)


def predict_fn(input_data, model):
    metadata = model["metadata"]
    matrix = labelled_csv.rows_to_matrix(input_data, metadata.get("features", []))
    expected = metadata.get("n_features")
    if expected and matrix.shape[1] != expected:
        raise ValueError(f"each instance needs {expected} features, got {matrix.shape[1]}")
    outputs = model["serve"](model["tf"].constant(matrix))
    probabilities = np.asarray(next(iter(outputs.values())))
    return probabilities.tolist()


def output_fn(prediction, accept):
    # TensorFlow Serving's REST answer, so local and SageMaker endpoints read alike.
    accept = (accept or "application/json").split(";")[0].strip().lower()
    if accept == "text/csv":
        return "\n".join(",".join(f"{p:.6f}" for p in row) for row in prediction) + "\n", "text/csv"
    if accept in ("application/json", "*/*", ""):
        return json.dumps({"predictions": prediction}), "application/json"
    raise ValueError(f"unsupported accept type {accept!r}: use application/json or text/csv")


if __name__ == "__main__":
    train(parse_args())
