"""Fault injection on the requester API: shares as configured, seeded, and `drop` applies the write."""

from __future__ import annotations

import re
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from click.testing import CliRunner
from conftest_marketplace import client, hit_params, http

from annotate.cli import cli
from annotate.marketplace import MarketplaceServer
from annotate.marketplace.faults import ENV_VAR, Faults, FaultSpec


def no_retries(url: str):
    # total_max_attempts=1: exactly one attempt. (Config(retries={"max_attempts": 1}) would still
    # allow one retry: botocore counts max_attempts as retries after the first call.)
    return client(url, retries=False)


def outcome(call) -> str:
    try:
        call()
    except ClientError as exc:
        status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
        return f"{exc.response['Error']['Code']}/{status}"
    except ConnectionClosedError:
        return "dropped"
    return "ok"


@pytest.fixture(autouse=True)
def no_env_faults(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_parse():
    spec = FaultSpec.parse("latency=0.02, throttle=0.1,error=0.02,drop=0.02,seed=7")
    assert spec == FaultSpec(latency=0.02, throttle=0.1, error=0.02, drop=0.02, seed=7)
    assert FaultSpec.parse(str(spec)) == spec
    assert not FaultSpec.parse("").active and FaultSpec.parse("seed=3").seed == 3
    for bad, named in [("jitter=1", "'jitter'"), ("throttle=lots", "throttle"), ("drop=1.5", "drop"),
                       ("latency=-1", "latency"), ("seed=1.5", "seed"), ("throttle", "'throttle'"),
                       ("throttle=0.6,error=0.6", "throttle \\+ error \\+ drop"), ("error=0.1,error=0.2", "'error'")]:
        with pytest.raises(ValueError, match=named):
            FaultSpec.parse(bad)


def test_shares_roughly_as_configured_and_seeded(tmp_path):
    spec = "throttle=0.2,error=0.1,drop=0.1,seed=7"
    runs = []
    for run in range(2):
        with MarketplaceServer(tmp_path / f"m{run}.db", faults=spec) as srv:
            mturk = no_retries(srv.url)
            got = [outcome(mturk.get_account_balance) for _ in range(400)]
            runs.append(got)
            share = {kind: got.count(kind) / 400 for kind in set(got)}
            # 400 draws: standard errors 0.02 (throttle) and 0.015 (error, drop); bounds are ~4 of them.
            assert 0.12 <= share["ThrottlingException/400"] <= 0.28
            assert 0.04 <= share["ServiceUnavailable/503"] <= 0.16
            assert 0.04 <= share["dropped"] <= 0.16
            assert set(got) == {"ok", "ThrottlingException/400", "ServiceUnavailable/503", "dropped"}
            assert srv.faults.counts == {"calls": 400, "throttle": got.count("ThrottlingException/400"),
                                         "error": got.count("ServiceUnavailable/503"), "drop": got.count("dropped")}
    assert runs[0] == runs[1]  # the same seed, the same faults on the same calls


def test_error_bodies_are_mturk_shaped(tmp_path):
    with MarketplaceServer(tmp_path / "m.db", faults="throttle=1") as srv:
        with pytest.raises(ClientError) as caught:
            no_retries(srv.url).get_account_balance()
        assert caught.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    with MarketplaceServer(tmp_path / "m.db", faults="error=1") as srv:
        with pytest.raises(ClientError) as caught:
            no_retries(srv.url).get_account_balance()
        # Not a modelled MTurk error, so botocore keeps code and status only (the 503 makes it retryable).
        assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert "temporarily unavailable" in caught.value.response["Error"]["Message"]


def test_botocore_retries_through_every_fault_kind(tmp_path):
    # Seed 3 puts each fault kind into the first 12 calls; botocore's backoff makes more calls slow.
    with MarketplaceServer(tmp_path / "m.db", faults="throttle=0.15,error=0.15,drop=0.15,seed=3") as srv:
        mturk = boto3.client("mturk", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="x",
                             aws_secret_access_key="x",
                             config=Config(retries={"mode": "standard", "total_max_attempts": 12}))
        for _ in range(8):
            assert mturk.get_account_balance()["AvailableBalance"] == "10000.00"
        counts = srv.faults.counts
        assert counts["calls"] > 8 and min(counts["throttle"], counts["error"], counts["drop"]) > 0


def test_dropped_create_hit_is_applied(tmp_path):
    with MarketplaceServer(tmp_path / "m.db", faults="") as srv:
        mturk = no_retries(srv.url)
        srv.faults = Faults(FaultSpec(drop=1.0))
        with pytest.raises(ConnectionClosedError):
            mturk.create_hit(**hit_params(UniqueRequestToken="batch-item-1"))
        srv.faults = None
        with pytest.raises(ClientError) as caught:
            mturk.create_hit(**hit_params(UniqueRequestToken="batch-item-1"))
        assert caught.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.HitAlreadyExists"
        (hit,) = mturk.list_hits()["HITs"]  # the dropped call created it, once
        assert re.search(r'HIT with ID "([A-Z0-9]+)"', str(caught.value)).group(1) == hit["HITId"]


def test_dropped_extension_is_applied_once(tmp_path):
    with MarketplaceServer(tmp_path / "m.db", faults="") as srv:
        mturk = no_retries(srv.url)
        hit_id = mturk.create_hit(**hit_params(MaxAssignments=3))["HIT"]["HITId"]
        balance = mturk.get_account_balance()["AvailableBalance"]
        srv.faults = Faults(FaultSpec(drop=1.0))
        with pytest.raises(ConnectionClosedError):
            mturk.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=2,
                                                        UniqueRequestToken="extend-1")
        srv.faults = None
        with pytest.raises(ClientError) as caught:
            mturk.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=2,
                                                        UniqueRequestToken="extend-1")
        assert caught.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.UniqueRequestTokenRequestAlreadyProcessed"
        assert mturk.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 5
        assert mturk.get_account_balance()["AvailableBalance"] != balance  # paid for, once
        assert float(balance) - float(mturk.get_account_balance()["AvailableBalance"]) == pytest.approx(2 * 0.06)


def test_latency_and_worker_pages_untouched(tmp_path):
    with MarketplaceServer(tmp_path / "m.db", faults="latency=0.05,throttle=1") as srv:
        mturk = no_retries(srv.url)
        started = time.perf_counter()
        for _ in range(5):
            with pytest.raises(ClientError):
                mturk.get_account_balance()
        assert time.perf_counter() - started >= 0.25
        started = time.perf_counter()
        for _ in range(5):
            status, _, _ = http("GET", srv.url + "/worker/?format=json")
            assert status == 200
        assert time.perf_counter() - started < 0.25
        assert srv.faults.counts["calls"] == 5


def test_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "throttle=1,seed=2")
    with MarketplaceServer(tmp_path / "m.db") as srv:
        assert srv.faults is not None and srv.faults.spec == FaultSpec(throttle=1.0, seed=2)
        assert outcome(no_retries(srv.url).get_account_balance) == "ThrottlingException/400"
    with MarketplaceServer(tmp_path / "m.db", faults="") as srv:  # an explicit argument wins
        assert srv.faults is None
        assert outcome(no_retries(srv.url).get_account_balance) == "ok"
    monkeypatch.setenv(ENV_VAR, "throttle=2")
    with pytest.raises(ValueError, match="throttle"):
        MarketplaceServer(tmp_path / "m.db")


def test_cli_rejects_a_bad_spec(tmp_path, monkeypatch):
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "marketplace", "serve", "--port", "0",
                                      "--db", str(tmp_path / "m.db"), "--faults", "latency=0.1,boom=1"])
    assert result.exit_code == 2 and "unknown key 'boom'" in result.output and "--faults" in result.output
    monkeypatch.setenv(ENV_VAR, "drop=x")
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "marketplace", "serve", "--port", "0",
                                      "--db", str(tmp_path / "m.db")])
    assert result.exit_code == 2 and ENV_VAR in result.output and "drop" in result.output
