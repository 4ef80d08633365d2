"""The key a choice list hints is the key that picks that choice (the digits template once hinted
"1" beside "0"): hint and handler read one data-key, rendered from annotate.templates.shortcut_keys.
The browser test (test_browser_access.py) presses every hinted key."""

from __future__ import annotations

import re

from annotate.config import load_batch
from annotate.templates import QuestionRenderer, shortcut_keys
from conftest import EXAMPLES


def test_digit_labels_are_their_own_keys_others_go_by_position():
    assert shortcut_keys([str(d) for d in range(10)]) == [str(d) for d in range(10)]
    assert shortcut_keys(["3", "1", "2"]) == ["3", "1", "2"]
    assert shortcut_keys(["a", "b", "c"]) == ["1", "2", "3"]
    assert shortcut_keys(["1", "1"]) == ["1", "2"]  # not distinct: by position
    assert shortcut_keys(["10", "20"]) == ["1", "2"]
    assert shortcut_keys([f"l{i}" for i in range(12)]) == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", None, None]


def test_the_digits_form_hints_each_digit_beside_itself():
    batch = load_batch(EXAMPLES / "digits")
    html = QuestionRenderer(batch, "local").html(batch.items[0])
    pairs = re.findall(r'value="(\d)" required data-key="(\d)"><span>(\d)</span> <span class="key" aria-hidden="true">(\d)</span>',
                       html)
    assert len(pairs) == 10 and all(len(set(p)) == 1 for p in pairs), pairs
