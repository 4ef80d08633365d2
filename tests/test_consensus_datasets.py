from pathlib import Path

import pytest

from annotate.datasets import load_crowd_dataset
from annotate.errors import UserError

GOOD_ANSWERS = "item,worker,label\na,w1,x\na,w2,y\nb,w1,y\n"
GOOD_TRUTH = "item,label\na,x\nb,y\n"


def make(tmp_path: Path, answers=GOOD_ANSWERS, truth=GOOD_TRUTH) -> Path:
    if answers is not None:
        (tmp_path / "answers.csv").write_text(answers)
    if truth is not None:
        (tmp_path / "truth.csv").write_text(truth)
    return tmp_path


def test_loads_a_good_dataset(tmp_path):
    ds = load_crowd_dataset(make(tmp_path))
    assert list(ds.answers.columns) == ["item", "worker", "label"]
    assert len(ds.answers) == 3 and len(ds.truth) == 2 and ds.labels == ["x", "y"]


@pytest.mark.parametrize("answers,truth,file,line,words", [
    (None, GOOD_TRUTH, "answers.csv", None, "missing file"),
    (GOOD_ANSWERS, None, "truth.csv", None, "missing file"),
    ("", GOOD_TRUTH, "answers.csv", 1, "empty"),
    ("item,worker,label\n", GOOD_TRUTH, "answers.csv", 2, "no data"),
    ("item,who,label\na,w1,x\n", GOOD_TRUTH, "answers.csv", 1, "worker"),
    ("item,worker,label\na,w1,x\nb,w1,y\na,w1,y\n", GOOD_TRUTH, "answers.csv", 4, "duplicate"),
    ("item,worker,label\na,w1,x\nb,w1\n", GOOD_TRUTH, "answers.csv", 3, "fields"),
    (GOOD_ANSWERS, "item,label\na,x\nzz,y\n", "truth.csv", 3, "zz"),
    (GOOD_ANSWERS, "item,label\na,x\nb,q\n", "truth.csv", 3, "'q'"),
    (GOOD_ANSWERS, "item,label\na,x\na,y\n", "truth.csv", 3, "second truth"),
    (GOOD_ANSWERS, "item,label\na,\n", "truth.csv", 2, "empty value"),
])
def test_bad_input_names_file_and_line(tmp_path, answers, truth, file, line, words):
    with pytest.raises(UserError) as exc:
        load_crowd_dataset(make(tmp_path, answers, truth))
    err = exc.value
    assert err.file.endswith(file)
    assert err.line == line
    assert words in err.message
    assert err.exit_code == 2


def test_not_a_directory(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        load_crowd_dataset(tmp_path / "nope")
