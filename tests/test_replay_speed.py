"""issue 16 part 4, replay at the speed of the data: what makes a harvest pass (and so the replay
through the marketplace) cheaper, checked without a clock."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from annotate.consensus._base import BaseAggregator
from annotate.replay import run_replay


def _dataset(root: Path, items: int = 16) -> Path:
    root.mkdir()
    rows = [{"item": f"i{i}", "worker": f"w{(i + w) % 7}", "label": "pos" if (i + 2 * w) % 5 else "neg"}
            for i in range(items) for w in range(5)]
    pd.DataFrame(rows).to_csv(root / "answers.csv", index=False)
    pd.DataFrame({"item": [f"i{i}" for i in range(items)], "label": ["pos"] * items}).to_csv(root / "truth.csv",
                                                                                              index=False)
    return root


def test_one_aggregator_fit_per_pass(tmp_path, monkeypatch):
    """The policy's decide and the label refresh see the same answers in a pass: one Dawid–Skene
    fit serves both (they fitted one each before)."""
    fits = []
    original = BaseAggregator.fit

    def counted(self, *args, **kwargs):
        fits.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BaseAggregator, "fit", counted)
    summary = run_replay(_dataset(tmp_path / "d"), policy="adaptive", workdir=tmp_path, block=False)
    assert summary["passes"] >= 2 and summary["answers_per_item"] > 2
    assert len(fits) == summary["passes"], fits
