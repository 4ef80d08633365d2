"""moto's SQS (and SNS) in server mode, for tests that need a queue reachable over HTTP: the
marketplace delivers notifications to it as MTurk delivers to SQS. Import the fixtures into a test
module (`from moto_sqs import aws_url, aws_credentials, sqs  # noqa: F401`); aws_credentials is
autouse there."""

from __future__ import annotations

import boto3
import pytest
from processes import free_port

moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def aws_url():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    # moto takes any credentials; the marketplace's deliverer finds them where boto3 looks.
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ANNOTATE_MARKETPLACE_NOTIFICATION_ENDPOINT", raising=False)


@pytest.fixture
def sqs(aws_url):
    return boto3.client("sqs", endpoint_url=aws_url, region_name="us-east-1")
