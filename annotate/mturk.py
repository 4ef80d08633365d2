"""The boto3 MTurk client for a target, with retries and a per-operation call count.

The same boto3 code runs against every target: `local` starts the embedded marketplace
(over HTTP, on its own SQLite file in the project home), `sandbox` and `production` are
MTurk's real endpoints in us-east-1 with the standard AWS credential chain.

Calls share one client-side send rate that adapts to throttling (concurrency.AdaptiveRate):
unlimited until MTurk first answers ThrottlingException, then just under the rate it allows.
ANNOTATE_CLIENT_RATE=fixed turns that off (only the retries' backoff is left), for comparison.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import boto3
import botocore.config
import botocore.exceptions
from botocore import xform_name
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_random_exponential

from annotate.concurrency import AdaptiveRate
from annotate.errors import UserError
from annotate.workspace import Workspace

REGION = "us-east-1"  # MTurk exists only there
ENDPOINTS = {
    "sandbox": "https://mturk-requester-sandbox.us-east-1.amazonaws.com",
    "production": "https://mturk-requester.us-east-1.amazonaws.com",
}
TARGETS = ("local", "sandbox", "production")
RETRYABLE_CODES = {"ThrottlingException", "ServiceFault", "ServiceUnavailable", "InternalFailure",
                   "RequestTimeout", "RequestTimeoutException", "TooManyRequestsException"}
HIT_ALREADY_EXISTS = "AWS.MechanicalTurk.HitAlreadyExists"
HIT_DOES_NOT_EXIST = "AWS.MechanicalTurk.HITDoesNotExist"
TOKEN_ALREADY_PROCESSED = "AWS.MechanicalTurk.UniqueRequestTokenRequestAlreadyProcessed"
CLIENT_RATE_ENV = "ANNOTATE_CLIENT_RATE"  # adaptive (default) | fixed
# One adaptive rate per endpoint for the whole process: the limit is MTurk's, per account, so what
# `post` learnt holds for the `harvest` after it, and for every harvest pass of a --watch.
_RATES: dict[str | None, AdaptiveRate] = {}
_RATES_LOCK = threading.Lock()


def shared_rate(endpoint_url: str | None) -> AdaptiveRate:
    with _RATES_LOCK:
        if endpoint_url not in _RATES:
            _RATES[endpoint_url] = AdaptiveRate()
        return _RATES[endpoint_url]
_HIT_ID_IN_MESSAGE = re.compile(r'HIT with ID "?([A-Z0-9]{10,})"?')
# How long one call keeps retrying (throttling, 5xx, an endpoint that does not answer) before it
# gives up, in seconds: small, so an unreachable endpoint is reported in seconds, not minutes.
RETRY_SECONDS_ENV = "ANNOTATE_MTURK_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 20.0
# The connection failed or was cut (botocore's EndpointConnectionError, ConnectTimeoutError,
# ConnectionClosedError, ReadTimeoutError, ...).
CONNECTION_ERRORS = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)


class MTurkUnreachable(UserError):
    """MTurk (or the endpoint standing in for it) did not answer, retries included: one line, no traceback."""

    def __init__(self, endpoint_url: str | None, operation: str, cause: BaseException, attempts: int, seconds: float,
                 target: str = "local"):
        self.endpoint_url = endpoint_url
        self.operation = operation
        self.attempts = attempts
        self.seconds = seconds
        detail = " ".join(str(cause).split()) or type(cause).__name__
        hint = ("Check --endpoint-url (or that `annotate marketplace serve` is running)" if target == "local"
                else "Check the network (and --endpoint-url, if one was given)")
        super().__init__(f"MTurk at {endpoint_url or 'its endpoint'} did not answer {operation} ({detail}); gave up "
                         f"after {attempts} attempt(s) in {seconds:.1f} s. {hint}")


def retry_seconds() -> float:
    """The retry time limit: ANNOTATE_MTURK_RETRY_SECONDS, else the default."""
    text = os.environ.get(RETRY_SECONDS_ENV)
    if text is None or not text.strip():
        return DEFAULT_RETRY_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise UserError(f"must be a number of seconds between 0 and 3600, not {text!r}", field=RETRY_SECONDS_ENV)
    return value


def error_code(exc: BaseException) -> str | None:
    """The MTurk error: TurkErrorCode when there is one, else the AWS error code."""
    if isinstance(exc, botocore.exceptions.ClientError):
        resp = exc.response
        return resp.get("TurkErrorCode") or resp.get("Error", {}).get("TurkErrorCode") or resp.get("Error", {}).get("Code")
    return None


def aws_code(exc: BaseException) -> str | None:
    if isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def existing_hit_id(exc: BaseException) -> str | None:
    """The HIT id MTurk names when a UniqueRequestToken was used before (HitAlreadyExists)."""
    if error_code(exc) != HIT_ALREADY_EXISTS:
        return None
    m = _HIT_ID_IN_MESSAGE.search(str(exc.response.get("Error", {}).get("Message", "")))
    return m.group(1) if m else None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return aws_code(exc) in RETRYABLE_CODES or status >= 500
    # The connection dropped or timed out: the call may or may not have happened, so only
    # operations made safe to repeat (tokens, status checks) are retried — which is all of ours.
    return isinstance(exc, CONNECTION_ERRORS)


def refused(exc: BaseException) -> bool:
    """MTurk answered and said no for good (a RequestError, a bad parameter): asking again is no use."""
    return isinstance(exc, botocore.exceptions.ClientError) and not _retryable(exc)


def request_error(exc: BaseException) -> bool:
    """MTurk's own refusal of this request (RequestError, with a TurkErrorCode): not credentials,
    not throttling, not a fault — the same request will be refused again."""
    return aws_code(exc) == "RequestError"


def describe(exc: BaseException) -> str:
    """One line for an MTurk error: its code and message."""
    if isinstance(exc, botocore.exceptions.ClientError):
        message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
        return f"{error_code(exc) or 'error'}: {message}" if message else str(error_code(exc) or exc)
    return " ".join(str(exc).split()) or type(exc).__name__


class MTurk:
    """A thin wrapper: `mturk.call("CreateHIT", ...)` retries throttling/5xx and counts calls.

    Given a `factory`, each thread calling at a time has a boto3 client of its own: clients are
    taken from an idle list and given back after the call, so a pool of 16 threads makes 16
    clients once and reuses them in every later pool. They come from one Session (sharing its
    loaded models: +12 MB for 16, against +127 MB for 16 sessions)."""

    def __init__(self, client, target: str, endpoint_url: str | None, attempts: int = 8, max_wait: float = 20.0,
                 factory: Callable[[], Any] | None = None, retry_for: float | None = None,
                 adaptive: bool | None = None):
        self.client = client
        self.target = target
        self.endpoint_url = endpoint_url
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._factory = factory
        self._idle: list = [client]
        self.clients_made = 1
        if adaptive is None:
            adaptive = os.environ.get(CLIENT_RATE_ENV, "adaptive").strip().lower() != "fixed"
        self.rate: AdaptiveRate | None = shared_rate(endpoint_url) if adaptive else None
        self.throttled = 0  # ThrottlingException answers met (each was retried)
        # Copied per call (a copy keeps its own attempt count, so threads do not share one).
        self._retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=wait_random_exponential(multiplier=0.05, max=max_wait),
            stop=stop_after_attempt(attempts) | stop_after_delay(retry_seconds() if retry_for is None else retry_for),
            reraise=True,
        )
        client.meta.events.register("before-call.mturk.*", self._count)

    def _count(self, model, **_: Any) -> None:
        with self._lock:
            self.calls[model.name] += 1

    @contextmanager
    def _checkout(self) -> Iterator[Any]:
        if self._factory is None:
            yield self.client  # one client, shared: boto3 clients are thread-safe
            return
        with self._lock:
            if self._idle:
                client = self._idle.pop()
            else:
                client = self._factory()  # under the lock: a boto3 Session is not thread-safe
                client.meta.events.register("before-call.mturk.*", self._count)
                self.clients_made += 1
        try:
            yield client
        finally:
            with self._lock:
                self._idle.append(client)

    def call(self, operation: str, **params: Any) -> dict:
        with self._checkout() as client:
            method = getattr(client, xform_name(operation))

            def once(**kwargs: Any) -> dict:
                if self.rate is not None:
                    self.rate.acquire()
                try:
                    answer = method(**kwargs)
                except botocore.exceptions.ClientError as exc:
                    if aws_code(exc) == "ThrottlingException":
                        with self._lock:
                            self.throttled += 1
                        if self.rate is not None:
                            self.rate.throttled()
                    raise
                if self.rate is not None:
                    self.rate.succeeded()
                return answer

            retrying = self._retrying.copy()
            started = time.monotonic()
            try:
                return retrying(once, **params)
            except CONNECTION_ERRORS as exc:
                raise MTurkUnreachable(self.endpoint_url, operation, exc, retrying.statistics.get("attempt_number", 1),
                                       time.monotonic() - started, self.target) from exc

    def pages(self, operation: str, key: str, **params: Any) -> Iterator[dict]:
        """Every element of a paged list call, following NextToken.

        MTurk puts a NextToken on every page that holds results, the last one too, and ends with an
        empty page; other services leave the token off the last page. Either ends the loop, and so
        does a page shorter than the MaxResults asked for (only the last page is short), which
        saves the empty page's call: one per HIT when listing each HIT's assignments."""
        token = None
        size = params.get("MaxResults")
        while True:
            page = self.call(operation, **params, **({"NextToken": token} if token else {}))
            items = page.get(key, [])
            yield from items
            token = page.get("NextToken")
            if not token or not items or (size is not None and len(items) < size):
                return

    def take_calls(self) -> dict[str, int]:
        with self._lock:
            out = dict(self.calls)
            self.calls.clear()
        return out


def _client_factory(endpoint_url: str, fake_credentials: bool) -> Callable[[], Any]:
    """Makes MTurk clients for an endpoint, all from one Session."""
    config = botocore.config.Config(
        # tenacity does the retrying, in one place; botocore's max_attempts counts retries, so
        # only total_max_attempts=1 really turns its own off.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10, read_timeout=60, max_pool_connections=10)
    kwargs: dict[str, Any] = {"region_name": REGION, "endpoint_url": endpoint_url, "config": config}
    session = boto3.session.Session()
    if fake_credentials:
        # The embedded marketplace accepts any signature; never send real keys to it.
        kwargs.update(aws_access_key_id="annotate-local", aws_secret_access_key="annotate-local")
    elif session.get_credentials() is None:
        raise UserError("no AWS credentials found for MTurk (set a profile with AWS_PROFILE, or "
                        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    return lambda: session.client("mturk", **kwargs)


def _client(endpoint_url: str, fake_credentials: bool):
    return _client_factory(endpoint_url, fake_credentials)()


def _mturk(endpoint_url: str, target: str, fake_credentials: bool) -> MTurk:
    factory = _client_factory(endpoint_url, fake_credentials)
    return MTurk(factory(), target, endpoint_url, factory=factory)


@contextmanager
def connect(ws: Workspace, target: str = "local", endpoint_url: str | None = None) -> Iterator[MTurk]:
    """An MTurk connection for a target; for `local` without an endpoint, the embedded marketplace runs
    in this process for the duration, on the project's marketplace database."""
    if target not in TARGETS:
        raise UserError(f"unknown target {target!r} (use local, sandbox or production)")
    if endpoint_url:
        yield _mturk(endpoint_url, target, fake_credentials=target == "local")
        return
    if target == "local":
        from annotate.marketplace import MarketplaceServer

        ws.ensure()
        try:
            # Production-like money, so budgets and fees are exercised as they will be for real.
            server = MarketplaceServer(ws.marketplace_db, mode="production")
        except ValueError as exc:  # a bad ANNOTATE_MARKETPLACE_FAULTS
            raise UserError(str(exc), field="ANNOTATE_MARKETPLACE_FAULTS") from None
        with server:
            yield _mturk(server.url, target, fake_credentials=True)
        return
    yield _mturk(ENDPOINTS[target], target, fake_credentials=False)
