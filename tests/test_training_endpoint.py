"""The local endpoint (SageMaker's /ping + /invocations contract), predict and teardown."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import pytest

from annotate.errors import UserError
from annotate.sagemaker import count_objects, deploy_local, draw_boxes, predict, teardown, teardown_steps, train_local
from annotate.sagemaker.endpoint import load_record, serve_in_thread
from annotate.sagemaker.local import load_job
from test_training_support import IRIS_FEATURES, iris_export


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("endpoint")
    result = train_local(root / "home", iris_export(root / "export"), {"features": IRIS_FEATURES}, batch="iris")
    return root / "home", result


def post(url, body, content_type, accept="application/json"):
    request = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                     headers={"Content-Type": content_type, "Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_ping_and_invocations_csv_and_json(trained):
    home, result = trained
    with serve_in_thread(load_job(home, result.job_name)) as endpoint:
        with urllib.request.urlopen(f"{endpoint.url}/ping") as response:
            assert response.status == 200
        status, mime, body = post(endpoint.url, b"5.1,3.5,1.4,0.2\n6.9,3.1,5.4,2.1\n", "text/csv")
        assert (status, mime) == (200, "application/json")
        assert [p["label"] for p in json.loads(body)["predictions"]] == ["setosa", "virginica"]

        named = {"instances": [dict(zip(IRIS_FEATURES, [5.9, 3.0, 4.2, 1.5]))]}
        _, _, body = post(endpoint.url, json.dumps(named).encode(), "application/json")
        assert json.loads(body)["predictions"][0]["label"] == "versicolor"

        _, mime, body = post(endpoint.url, b"5.1,3.5,1.4,0.2", "text/csv", accept="text/csv")
        assert mime == "text/csv" and body.decode().startswith("0,setosa,")

        with pytest.raises(urllib.error.HTTPError) as info:
            post(endpoint.url, b"1,2", "text/csv")
        assert info.value.code == 400 and b"needs 4 features" in info.value.read()
        with pytest.raises(urllib.error.HTTPError) as info:
            post(endpoint.url, b"<x/>", "application/xml")
        assert info.value.code == 415


def test_background_endpoint_predict_and_teardown(trained):
    home, result = trained
    record = deploy_local(home, result.job_name, name="iris-local", background=True)
    try:
        assert record["url"].startswith("http://127.0.0.1:") and load_record(home, "iris-local")["pid"] == record["pid"]
        rows = predict(home, "iris-local", ["5.0,3.4,1.5,0.2", "6.7,3.0,5.2,2.3"])
        assert [r.label for r in rows] == ["setosa", "virginica"]
        with pytest.raises(UserError, match="already running"):
            deploy_local(home, result.job_name, name="iris-local", background=True)
    finally:
        steps = teardown_steps(home, "iris-local")
        assert steps[0].description.startswith(f"local endpoint iris-local (pid {record['pid']}")
        assert teardown(home, "iris-local", steps) == [steps[0].description]
    with pytest.raises(ProcessLookupError):
        os.kill(record["pid"], 0)
    assert load_record(home, "iris-local") is None
    with pytest.raises(UserError, match="no local endpoint"):
        predict(home, "iris-local", ["5.0,3.4,1.5,0.2"], target="local")


def test_object_counting_and_boxes(tmp_path):
    from PIL import Image

    detections = [[0.0, 0.995, 0.38, 0.0077, 0.525, 0.194], [0.0, 0.49, 0.1, 0.1, 0.2, 0.2],
                  [0.0, 0.5, 0.6, 0.6, 0.9, 0.9], [-1.0, 0.99, 0, 0, 0, 0]]
    boxes = count_objects(detections, threshold=0.5)
    assert [b["score"] for b in boxes] == [0.995, 0.5]  # >= threshold counts; padding (-1) never does

    image = tmp_path / "shelf.jpg"
    Image.new("RGB", (200, 100), (255, 255, 255)).save(image)
    out = draw_boxes(image, boxes, tmp_path / "out" / "shelf.boxes.png", labels=["bottle"])
    drawn = Image.open(out).convert("RGB")
    assert drawn.size == (200, 100)
    assert drawn.getpixel((int(0.6 * 200), 75)) == (255, 0, 0)  # the left edge of the second box
    assert drawn.getpixel((10, 90)) == (255, 255, 255)


def test_predict_object_detection_through_endpoint_answer(tmp_path):
    from PIL import Image

    from annotate.sagemaker.predict import read_response

    image = tmp_path / "cans.png"
    Image.new("RGB", (64, 64)).save(image)
    answer = {"prediction": [[0, 0.9, 0.1, 0.1, 0.4, 0.4], [0, 0.8, 0.5, 0.5, 0.9, 0.9], [0, 0.1, 0, 0, 1, 1]]}
    [row] = read_response(json.dumps(answer).encode(), "application/json", name=str(image),
                          algorithm="object-detection", labels=["can"], threshold=0.5, out_dir=tmp_path / "p")
    assert row.count == 2 and row.output == str(tmp_path / "p" / "cans.boxes.png")
    assert (tmp_path / "p" / "cans.boxes.png").exists()
