import pandas as pd
import pytest

from annotate.consensus import DEFAULT_POLICY, POLICIES, Decision, get_policy


def answers(rows):
    return pd.DataFrame(rows, columns=["item", "worker", "label"])


def items(rows):
    return pd.DataFrame(rows, columns=["item", "bought", "open"])


def test_agree_defaults_and_decisions():
    p = get_policy("agree")
    assert (p.initial_assignments, p.max_assignments, p.k) == (2, 9, 2)
    a = answers([
        ("agreed", "w1", "x"), ("agreed", "w2", "x"),
        ("split", "w1", "x"), ("split", "w2", "y"),
        ("capped", "w1", "x"), ("capped", "w2", "y"),
        ("pending", "w1", "x"),
    ])
    it = items([("agreed", 2, False), ("split", 2, False), ("capped", 9, False), ("pending", 2, True), ("fresh", 2, True)])
    d = p.decide(a, it)
    assert d["agreed"] == Decision("label", "x", 1.0)
    assert d["split"].action == "extend" and d["split"].extend_by == 1
    assert d["capped"].action == "unresolved" and d["capped"].label == "x"  # tie -> first label
    assert d["pending"] == Decision("wait", "x", 1.0)
    assert d["fresh"] == Decision("wait", None, 0.0)


def test_agree_k3_and_split_among_many_is_not_agreement():
    p = get_policy("agree", agree=3, max_assignments=7)
    assert p.initial_assignments == 3
    a = answers([(f"i", f"w{n}", lab) for n, lab in enumerate("xxyyy")] + [("t", f"w{n}", lab) for n, lab in enumerate("xxxyyy")])
    d = p.decide(a, items([("i", 5, False), ("t", 6, False)]))
    assert d["i"].action == "label" and d["i"].label == "y"
    assert d["t"].action == "extend"  # 3-3 split


def test_starved_item_is_not_extended():
    # bought 4 but the HIT closed with 3 answers: more would expire too
    a = answers([("i", "w1", "x"), ("i", "w2", "y"), ("i", "w3", "z")])
    assert get_policy("agree").decide(a, items([("i", 4, False)]))["i"].action == "unresolved"


def test_unknown_setting_names_the_key():
    with pytest.raises(ValueError, match="'agreee'"):
        get_policy("agree", agreee=3)
    with pytest.raises(ValueError, match="'thresold'"):
        get_policy("adaptive", thresold=0.9)
    with pytest.raises(ValueError, match="nope"):
        get_policy("nope")
    with pytest.raises(ValueError, match="initial_assignments"):
        get_policy("agree", initial_assignments=12)
    with pytest.raises(ValueError, match="threshold"):
        get_policy("confidence", threshold=1.5)


def test_default_policy_and_policy_key():
    assert type(get_policy(None)) is POLICIES[DEFAULT_POLICY]
    assert type(get_policy(policy="agree", agree=3)) is POLICIES["agree"]
    with pytest.raises(ValueError, match="twice"):
        get_policy("agree", policy="confidence")


def test_decision_validates():
    with pytest.raises(ValueError):
        Decision("extend", "x", 0.5, 0)
    with pytest.raises(ValueError):
        Decision("label", "x", 0.9, 2)
    with pytest.raises(ValueError):
        Decision("maybe", None, 0.0)


def _crowd():
    # 'good' answers right everywhere; items c* are contested by a noisy worker
    rows = []
    for i in range(30):
        rows += [(f"e{i}", "good", "x"), (f"e{i}", "g2", "x")]
    for i in range(5):
        rows += [(f"c{i}", "good", "x"), (f"c{i}", "noisy", "y")]
    return answers(rows)


def test_confidence_policy_labels_confident_and_extends_contested():
    p = get_policy("confidence", threshold=0.9)
    a = _crowd()
    it = items([(i, 2, False) for i in a["item"].unique()])
    d = p.decide(a, it)
    assert all(d[f"e{i}"].action == "label" for i in range(30))
    assert all(d[f"c{i}"].action == "extend" for i in range(5))
    it.loc[it["item"] == "c0", "bought"] = 9
    assert p.decide(a, it)["c0"].action == "unresolved"
    it.loc[it["item"] == "c1", "open"] = True
    assert p.decide(a, it)["c1"].action == "wait"


def test_budget_buys_least_confident_first_and_stops_when_spent():
    a = _crowd()
    ids = list(a["item"].unique())
    # budget 2.1/item over 35 items -> 73 answers, 70 spent: 3 left, pace 1 -> 3 extends
    p = get_policy("adaptive", budget=2.1, pace=1.0, threshold=0.9)
    d = p.decide(a, items([(i, 2, False) for i in ids]))
    ext = [i for i, x in d.items() if x.action == "extend"]
    assert len(ext) == 3 and all(i.startswith("c") for i in ext)
    p2 = get_policy("adaptive", budget=2.0, threshold=0.9)
    d2 = p2.decide(a, items([(i, 2, False) for i in ids]))
    assert not any(x.action == "extend" for x in d2.values())
    assert d2["c0"].action == "label"  # budget spent: best label, not unresolved


def test_aggregate_returns_labels_and_skills():
    labels, skills = get_policy("adaptive").aggregate(_crowd())
    # confidence: calibrated probability the label is right; raw_confidence: the DS posterior
    assert list(labels.columns) == ["item", "label", "confidence", "raw_confidence"]
    assert len(labels) == 35 and set(skills.index) == {"good", "g2", "noisy"}
    assert labels.set_index("item").loc["e0", "label"] == "x"
