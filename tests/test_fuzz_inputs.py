"""No batch input ends in a traceback (issue 11, item 7): hypothesis writes batch.toml settings of
every TOML type, CSV and JSON Lines items (control characters, NUL, lone surrogates, deep nesting,
stray bytes) and jinja2 templates (includes, arithmetic, filters), and `post_batch(dry_run=True)`
must either succeed or raise UserError (exit 2) with a message the terminal can print. Bounded:
a few hundred examples, well under a minute on one core."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotate.errors import UserError
from annotate.post import post_batch
from annotate.workspace import Workspace
from conftest import make_batch

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    from annotate.marketplace import MarketplaceServer

    with MarketplaceServer(tmp_path_factory.mktemp("fuzz-market") / "m.db") as server:
        yield server


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return make_batch(tmp_path_factory.mktemp("fuzz-good"), items=3)


def attempt(market, good: Path, edit) -> None:
    """Copy the good batch, break it with `edit`, dry-run a post: success or UserError, nothing else."""
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        batch = root / "batch"
        shutil.copytree(good, batch)
        edit(batch)
        try:
            post_batch(Workspace(root / "home").ensure(), batch, endpoint_url=market.url, dry_run=True)
        except UserError as exc:
            str(exc).encode("utf-8")  # printable: no lone surrogate reaches the terminal
            assert exc.exit_code == 2
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- batch.toml

def toml_value(value) -> str:
    """A value in TOML's inline syntax (json's string escapes are TOML's, bar surrogates, which TOML refuses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


texts = st.text(st.characters(codec=None, blacklist_categories=()), max_size=30)
scalars = st.one_of(texts, st.integers(), st.floats(), st.booleans(),
                    st.sampled_from(["", " ", "\x00", "\x01", "\ud800", "x" * 3000]))
toml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.sampled_from(["a", "QualificationTypeId", "Comparator", "IntegerValues"]), inner, max_size=3)),
                           max_leaves=8)
# Values near each setting's edge, beside values of every TOML type.
EDGES = {
    ("batch", "name"): ["iris_small", "a.b", "-x", "x" * 65, "sp_amt"],
    ("batch", "template"): ["nope.j2", "../batch.toml", "items.csv", "/etc/passwd", "_base.html.j2"],
    ("batch", "items"): ["nope.csv", "batch.toml", "items.xlsx", "iris.html.j2", "../x.csv"],
    ("batch", "id_column"): ["species", "nope", "sepal_length"],
    ("batch", "gold_column"): ["id", "nope", "sepal_length"],
    ("batch", "known_answer_column"): ["species", "id", "nope"],
    ("batch", "task_type"): ["text-classification", "bounding-box", "named-entity", "free-text", "nope"],
    ("batch", "label_attribute"): ["x-metadata", "x-ref", "a-", "a--b", "a_b", "x" * 128],
    ("hit", "title"): ["x" * 129, "t\x07"],
    ("hit", "description"): ["x" * 2001],
    ("hit", "keywords"): ["k," * 501],
    ("hit", "reward"): ["0.05", "1e30", "9" * 30, "-1", "0.051", "1.", ".5", "0x10", "1_000", "NaN", "Infinity", 10 ** 18],
    ("hit", "assignment_duration"): ["10m", "29s", "366d", "0", -1, 2 ** 63 - 1, "10 m", "1w"],
    ("hit", "lifetime"): ["3d", "29", "400d", 31_536_001],
    ("hit", "auto_approval_delay"): ["0", "31d", -5],
    ("hit", "frame_height"): [0, -1, 2 ** 63 - 1],
    ("hit", "qualifications"): [[{"QualificationTypeId": "X", "Comparator": "Bigger"}],
                                [{"QualificationTypeId": "X", "Comparator": "In", "IntegerValues": ["x"]}],
                                [{"QualificationTypeId": "X", "Comparator": "In", "LocaleValues": [{"Country": "USA"}]}]],
    ("hit", "approval"): ["auto", "harvest", "later"],
    ("task", "labels"): [["a"], ["a", "a"], [1, 2], ["a", "b\x00"], [True]],
    ("task", "field"): ["assignmentId", "hitId", "workerId", "turkSubmitTo", "taskAnswers"],
    ("task", "instructions"): ["\x0b", "]]>"],
    ("consensus", "policy"): ["agree", "fixed", "confidence", "adaptive", "nope"],
    ("consensus", "agree"): [0, 1, 10, 11],
    ("consensus", "max_assignments"): [9, 10, 20, 2_000_000, 0],
    ("consensus", "initial_assignments"): [1, 9, 10, 11],
    ("consensus", "assignments"): [1, 10],
    ("consensus", "aggregator"): ["majority", "dawid-skene", "nope"],
    ("budget", "max_usd"): ["0.01", "1e30", "-1"],
    ("budget", "account_max_usd"): ["0.01", "1e9"],
    ("workers", "block"): [True, "yes"],
    ("workers", "block_below"): [0.5, 2, float("nan")],
    ("workers", "block_after"): [0, 1, True],
    ("workers", "exclude_after"): [0, 1, 20],
    ("workers", "pool"): [80, 0, 101, True, ">= 80"],
    ("workers", "pool_after"): [0, 20],
}
settings_changes = st.lists(st.sampled_from(sorted(EDGES)).flatmap(
    lambda key: st.tuples(st.just(key), st.one_of(st.sampled_from(EDGES[key]), toml_values))), min_size=1, max_size=2)


@FUZZ
@given(changes=settings_changes)
def test_any_batch_toml_setting(market, good, changes):
    from conftest import _set

    def edit(batch):
        text = (batch / "batch.toml").read_text()
        for (section, key), value in changes:
            if f"[{section}]" not in text.splitlines():
                text += f"\n[{section}]\n"
            text = _set(text, section, key, toml_value(value))
        (batch / "batch.toml").write_text(text)

    attempt(market, good, edit)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), texts))
def test_any_batch_toml_text(market, good, raw):
    def edit(batch):
        path = batch / "batch.toml"
        path.write_bytes(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))

    attempt(market, good, edit)


# ---------------------------------------------------------------- items

HEADER = ["id", "sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
cells = st.one_of(texts, st.sampled_from(["setosa", "virginica", "", "a/b", "\x00", "\x01", "=1+1", "x" * 250]))
csv_rows = st.lists(st.lists(cells, min_size=0, max_size=8), min_size=0, max_size=4)


@FUZZ
@given(header=st.one_of(st.just(HEADER), st.lists(cells, max_size=7)), rows=csv_rows,
       junk=st.one_of(st.none(), st.binary(max_size=40)))
def test_any_csv_items(market, good, header, rows, junk):
    import csv
    import io

    def edit(batch):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        data = buf.getvalue().encode("utf-8", "surrogatepass") + (junk or b"")
        (batch / "items.csv").write_bytes(data)

    attempt(market, good, edit)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
                           lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
                           max_leaves=10)
json_items = st.fixed_dictionaries({"id": st.one_of(texts, st.integers(), json_values)},
                                   optional={"sepal_length": json_values, "sepal_width": json_values, "petal_length": json_values,
                                             "petal_width": json_values, "species": st.one_of(st.sampled_from(["setosa"]), json_values),
                                             "note": json_values})


@FUZZ
@given(lines=st.lists(st.one_of(json_items.map(lambda d: json.dumps(d)), texts,
                                st.integers(1, 3000).map(lambda n: '{"id": "deep", "x": ' + "[" * n + "]" * n + "}")),
                      max_size=4),
       suffix=st.sampled_from([".jsonl", ".manifest"]))
def test_any_jsonl_items(market, good, lines, suffix):
    def edit(batch):
        (batch / f"items{suffix}").write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
        text = (batch / "batch.toml").read_text().replace('items = "items.csv"', f'items = "items{suffix}"')
        (batch / "batch.toml").write_text(text)

    attempt(market, good, edit)


# ---------------------------------------------------------------- templates

fragments = st.sampled_from([
    "{{ item.id }}", "{{ item.sepal_length }}", "{{ item.nope }}", "{{ 1//0 }}", "{{ 1/0 }}", "{{ item.id | int }}",
    "{{ item.id | truncate('x') }}", "{{ labels[7] }}", "{% for l in labels %}{{ l }}{% endfor %}", "{% include 'nope.j2' %}",
    "{% include 'self.html.j2' %}", "{% include '_base.html.j2' %}", "{% extends 'nope.j2' %}", "{{ media(item.id) }}",
    "{{ inline('missing.png') }}", "{{ 'x' * 70000 }}", "{{", "}}", "{%", "%}", "{# ", "<![CDATA[", "]]>", "\x00", "\x01",
    "\ud800", "<p>", "{{ range(10)|sum }}", "{{ item|length }}", "{% set x = x + 1 %}", "{{ (2**64)|string }}",
    "{{ '%d'|format('x') }}", "{{ item.id[5:1] }}", "{{ None.x }}", "{{ field }}", "{{ submit_url }}",
])
templates = st.one_of(st.lists(st.one_of(fragments, texts), max_size=6).map("".join), st.binary(max_size=60))


@FUZZ
@given(body=templates)
def test_any_template(market, good, body):
    def edit(batch):
        data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
        (batch / "self.html.j2").write_bytes(data)
        text = (batch / "batch.toml").read_text().replace('template = "iris.html.j2"', 'template = "self.html.j2"')
        (batch / "batch.toml").write_text(text)

    attempt(market, good, edit)
