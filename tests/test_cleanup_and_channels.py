"""Teardown expires a batch's leftover HITs; export --format segmentation-channels from a GT manifest."""

from __future__ import annotations

import json

import boto3
import numpy as np
from click.testing import CliRunner
from PIL import Image

from annotate.cli import cli
from annotate.post import post_batch
from conftest import make_batch


def test_teardown_expires_open_hits(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=5)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(ws.home), "teardown", "--batch", "iris-small", "--json"], input="n\n")
    assert result.exit_code != 0 and "expire 5 open HIT(s) of batch iris-small" in result.output  # listed, then refused
    result = runner.invoke(cli, ["--home", str(ws.home), "teardown", "--batch", "iris-small", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    client = boto3.client("mturk", endpoint_url=marketplace.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    hits = client.list_hits(MaxResults=100)["HITs"]
    assert len(hits) == 5 and all(h["NumberOfAssignmentsAvailable"] == 2 for h in hits)
    workers_view = json.loads(__import__("urllib.request").request.urlopen(f"{marketplace.url}/worker/?format=json").read())
    assert workers_view["hits"] == []  # nothing left for workers to take
    assert runner.invoke(cli, ["--home", str(ws.home), "teardown"]).exit_code == 2


def test_segmentation_channels_from_a_ground_truth_manifest(ws, tmp_path):
    lines = []
    for n in range(10):
        image = tmp_path / f"img{n}.jpg"
        Image.fromarray(np.full((8, 8, 3), n * 20, dtype=np.uint8)).save(image)
        mask = tmp_path / f"mask{n}.png"
        Image.fromarray(np.eye(8, dtype=np.uint8) * 1).convert("P").save(mask)
        lines.append({"source-ref": str(image), "turtles-ref": str(mask),
                      "turtles-ref-metadata": {"internal-color-map": {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
                                                                      "1": {"class-name": "turtle", "hex-color": "#2ca02c"}},
                                               "type": "groundtruth/semantic-segmentation"}})
    manifest = tmp_path / "output.manifest"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "channels"
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "export", "--format", "segmentation-channels",
                                      "--from-manifest", str(manifest), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["train"] == 8 and summary["validation"] == 2
    for channel in ("train", "train_annotation", "validation", "validation_annotation"):
        assert (out / channel).is_dir()
    stems = {p.stem for p in (out / "train").iterdir()}
    assert stems == {p.stem for p in (out / "train_annotation").iterdir()}  # each mask named after its image
