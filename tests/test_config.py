"""batch.toml and items files: good ones load, bad ones name the file, line or field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from annotate.config import load_batch, parse_duration
from annotate.errors import UserError
from conftest import make_batch


def test_example_batches_load():
    from conftest import EXAMPLES

    digits = load_batch(EXAMPLES / "digits")
    assert len(digits.items) == 500 and digits.labels == [str(d) for d in range(10)]
    assert digits.hit.reward == Decimal("0.02")
    iris = load_batch(EXAMPLES / "iris")
    assert len(iris.items) == 150
    # The gold column never reaches what the template sees.
    assert all("species" not in item.data for item in iris.items)
    assert iris.gold_annotations()["iris/iris-001"] == "virginica"


def test_durations():
    assert parse_duration("10m", "hit.lifetime", "b") == 600
    assert parse_duration(90, "hit.lifetime", "b") == 90
    assert parse_duration("3d", "hit.lifetime", "b") == 259200


BAD_TOML = [
    # (override or text, expected words in the message)
    ({"hit__reward": '"-0.05"'}, "hit.reward"),
    ({"hit__reward": "0.05"}, "string"),
    ({"hit__reward": '"0.055"'}, "whole cents"),
    ({"hit__reward": '"lots"'}, "not an amount"),
    ({"hit__lifetime": '"10s"'}, "hit.lifetime"),
    ({"hit__assignment_duration": '"400d"'}, "hit.assignment_duration"),
    ({"hit__auto_approval_delay": '"31d"'}, "hit.auto_approval_delay"),
    ({"hit__title": '""'}, "hit.title"),
    ({"hit__title": '"' + "x" * 200 + '"'}, "128"),
    ({"hit__colour": '"red"'}, "hit.colour"),
    ({"task__labels": "[]"}, "task.labels"),
    ({"task__labels": '["a", "a"]'}, "duplicate labels"),
    ({"batch__task_type": '"video"'}, "batch.task_type"),
    ({"batch__name": '"bad name!"'}, "batch.name"),
    ({"batch__items": '"items.xlsx"'}, "items file not found"),
    ({"batch__template": '"nope.html.j2"'}, "batch.template"),
    ({"budget__max_usd": '"-1"'}, "budget.max_usd"),
    ({"hit__qualifications": '[{ Comparator = "In" }]'}, "hit.qualifications"),
]


@pytest.mark.parametrize("overrides,expected", BAD_TOML, ids=[e for _, e in BAD_TOML])
def test_bad_batch_toml_names_the_field(tmp_path, overrides, expected):
    batch = make_batch(tmp_path, **overrides)
    with pytest.raises(UserError) as info:
        load_batch(batch).__class__  # template errors surface at render time, the rest here
        from annotate.templates import QuestionRenderer

        QuestionRenderer(load_batch(batch))
    assert expected in str(info.value)
    assert "batch.toml" in str(info.value) or "items" in str(info.value)


def test_toml_syntax_error_names_the_line(tmp_path):
    batch = make_batch(tmp_path)
    (batch / "batch.toml").write_text('[batch]\nname = "x"\ntemplate = \n')
    with pytest.raises(UserError, match=r"batch.toml:3"):
        load_batch(batch)


def test_missing_title(tmp_path):
    batch = make_batch(tmp_path)
    text = (batch / "batch.toml").read_text().replace('title = "Identify the iris species from a drawing"\n', "")
    (batch / "batch.toml").write_text(text)
    with pytest.raises(UserError, match=r"field 'hit.title'.*missing required"):
        load_batch(batch)


BAD_ITEMS = [
    ("id,sepal_length,sepal_width,petal_length,petal_width,species\n", "no items", None),
    ("", "no header", None),
    ("id,sepal_length,sepal_width,petal_length,petal_width,species\na,1,2,3,4,setosa\na,1,2,3,4,setosa\n",
     "duplicate item id 'a'", 3),
    ("id,sepal_length,sepal_width,petal_length,petal_width,species\na,1,2,3,4,daisy\n", "not one of the task's labels", 2),
    ("id,sepal_length,sepal_width,petal_length,petal_width\na,1,2,3,4\n", "gold column 'species' is missing", 2),
    ("id,sepal_length,sepal_width,petal_length,petal_width,species\na,1,2,3,4,setosa,extra\n", "more fields", 2),
    ("id,sepal_length,sepal_width,petal_length,petal_width,species\na,1,2\n", "fewer fields", 2),
    ("id,sepal_length,sepal_width,petal_length,petal_width,species\n,1,2,3,4,setosa\n", "empty item id", 2),
    ("id,id,sepal_length\n", "duplicate columns", 1),
]


@pytest.mark.parametrize("text,expected,line", BAD_ITEMS, ids=[e for _, e, _ in BAD_ITEMS])
def test_bad_items_csv_names_the_line(tmp_path, text, expected, line):
    batch = make_batch(tmp_path)
    (batch / "items.csv").write_text(text)
    with pytest.raises(UserError) as info:
        load_batch(batch)
    assert expected in str(info.value)
    assert "items.csv" in str(info.value)
    if line:
        assert f"items.csv:{line}" in str(info.value)


def test_bad_encoding_names_the_line(tmp_path):
    batch = make_batch(tmp_path)
    (batch / "items.csv").write_bytes(b"id,sepal_length,sepal_width,petal_length,petal_width,species\n"
                                      b"a,1,2,3,4,setosa\nb,1,2,3,4,set\xffosa\n")
    with pytest.raises(UserError, match=r"items.csv:3.*not UTF-8"):
        load_batch(batch)


def test_jsonl_and_manifest_items(tmp_path):
    batch = make_batch(tmp_path, batch__items='"items.jsonl"')
    (batch / "items.jsonl").write_text(
        '{"id": "a", "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, "species": "setosa"}\n'
        '{"id": "b", "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, "species": "setosa"\n')
    with pytest.raises(UserError, match=r"items.jsonl:2.*not JSON"):
        load_batch(batch)
    manifest = make_batch(tmp_path, name="m", batch__items='"items.manifest"')
    (manifest / "items.manifest").write_text('{"source-ref": "s3://bucket/a.png"}\n{"id": "x"}\n')
    with pytest.raises(UserError, match=r"items.manifest:2.*source-ref"):
        load_batch(manifest)


# issue 11: the limits come from botocore's service models where those state them.

def test_reward_is_mturks_currency_amount():
    from annotate.config import parse_reward

    assert parse_reward("0.05", "b") == Decimal("0.05") and parse_reward(2, "b") == Decimal("2.00")
    assert parse_reward("1.", "b") == Decimal("1.00")
    for bad, words in [("1e30", "CurrencyAmount"), ("1E2", "CurrencyAmount"), ("+1", "CurrencyAmount"),
                       ("1_000", "CurrencyAmount"), ("9" * 21, "digits"), ("0.051", "whole cents"), (True, "not an amount"),
                       ([1], "not an amount"), ("NaN", "zero or more"), ("-0.01", "zero or more")]:
        with pytest.raises(UserError, match=words):
            parse_reward(bad, "b")


@pytest.mark.parametrize("name,attribute", [("iris", "iris"), ("sp_amt", "sp-amt"), ("a.b_c", "a-b-c"),
                                            ("x_", "x"), ("a__b", "a--b"), ("x-metadata", "x-metadata-label"),
                                            ("y.ref", "y-ref-label")])
def test_default_label_attribute_is_legal_for_every_legal_name(name, attribute):
    """B14: '_' and '.' are allowed in batch names, not in Ground Truth's LabelAttributeName."""
    from annotate.config import default_label_attribute
    from annotate.limits import model_pattern

    assert default_label_attribute(name) == attribute
    assert model_pattern("sagemaker", "LabelAttributeName").fullmatch(attribute)


def test_batch_named_with_underscore_and_dot_loads(tmp_path):
    batch = make_batch(tmp_path, name="iris_small.v2")
    text = (batch / "batch.toml").read_text().replace('label_attribute = "species"\n', "")
    (batch / "batch.toml").write_text(text)
    loaded = load_batch(batch)
    assert (loaded.name, loaded.label_attribute) == ("iris_small.v2", "iris-small-v2")


def test_ten_or_more_assignments_only_from_the_start(tmp_path):
    """B3: HITs created with < 10 assignments can never reach 10; starting at 10 is a deliberate choice."""
    from annotate.post import make_policy

    jammed = make_batch(tmp_path / "a", consensus__max_assignments="20")
    with pytest.raises(UserError, match=r"consensus.max_assignments.*fewer than 10"):
        make_policy(load_batch(jammed))
    deliberate = make_batch(tmp_path / "b", consensus__max_assignments="20", consensus__initial_assignments="10")
    policy = make_policy(load_batch(deliberate))
    assert (policy.initial_assignments, policy.max_assignments) == (10, 20)
    assert make_policy(load_batch(make_batch(tmp_path / "c"))).max_assignments == 9


def test_limits_match_the_service_model():
    """The model's own bounds, read rather than copied: a botocore update moves them."""
    from annotate.limits import input_shape, problems

    hit = input_shape("mturk", "CreateHITWithHITType")
    assert hit.members["UniqueRequestToken"].metadata["max"] == 64
    ok = {"HITTypeId": "ABC", "LifetimeInSeconds": 60, "Question": "<q/>", "UniqueRequestToken": "t" * 64}
    assert problems(ok, hit) == []
    assert problems({**ok, "UniqueRequestToken": "t" * 65}, hit) == ["UniqueRequestToken: at most 64 characters, got 65"]
    assert "HITTypeId" in problems({**ok, "HITTypeId": "abc"}, hit)[0]
    assert "RequesterAnnotation" in problems({**ok, "RequesterAnnotation": "\x00"}, hit)[0]
