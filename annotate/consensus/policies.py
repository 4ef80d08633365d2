"""Stopping policies: given every answer collected so far in a batch, decide per item whether to
label it, buy more assignments, wait for outstanding ones, or give up (unresolved).

Policies are stateless: everything they need is in (answers, items, skills), so the live
harvester and the offline replay (`simulate.py`) drive the very same objects and get the very
same decisions. Every call re-decides every item; a "label" is final once no item extends.

An item whose HIT has closed with fewer answers than assignments bought ("starved": the HIT
expired, or the replay ran out of recorded answers) is never extended again, since buying more
would just expire again; it is labelled if the policy's criterion holds, else unresolved.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import aggregators as _agg
from .calibration import poisson_binomial_variance

ACTIONS = ("label", "extend", "wait", "unresolved")
# MTurk charges 40% instead of 20% once a HIT has 10 or more assignments; 9 stays under the cliff
DEFAULT_MAX_ASSIGNMENTS = 9


@dataclass(frozen=True)
class Decision:
    action: str  # "label" | "extend" | "wait" | "unresolved"
    label: str | None  # current best label (also for wait/unresolved when there is one)
    confidence: float  # aggregator posterior of that label
    extend_by: int = 0  # for "extend": how many more assignments to buy

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; expected one of {ACTIONS}")
        if self.action == "extend" and self.extend_by < 1:
            raise ValueError("an 'extend' decision must buy at least one assignment")
        if self.action != "extend" and self.extend_by:
            raise ValueError("only an 'extend' decision buys assignments")


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SettingError(name, f"setting '{name}' must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_prob(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise SettingError(name, f"setting '{name}' must be a number in (0, 1], got {value!r}")
    return float(value)


def _item_state(answers: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """items indexed by item id with bought, open, n (answers received), starved."""
    missing = [c for c in ("item", "bought", "open") if c not in items.columns]
    if missing:
        raise ValueError(f"items table lacks column(s) {missing}; needs item, bought, open")
    state = items.assign(item=items["item"].astype(str)).set_index("item")[["bought", "open"]].copy()
    state["bought"] = state["bought"].astype(int)
    state["open"] = state["open"].astype(bool)
    counts = answers["item"].astype(str).value_counts() if len(answers) else pd.Series(dtype=int)
    state["n"] = counts.reindex(state.index, fill_value=0).astype(int)
    state["starved"] = ~state["open"] & (state["bought"] > state["n"])
    return state


class Policy:
    """Base: settings handling, aggregation, final labels."""

    name = ""
    # setting name -> default; subclasses extend
    SETTINGS: dict = {"initial_assignments": None, "max_assignments": DEFAULT_MAX_ASSIGNMENTS, "aggregator": "majority"}

    def __init__(self, **settings):
        for key in settings:
            if key not in self.SETTINGS:
                raise SettingError(key, f"unknown setting '{key}' for consensus policy '{self.name}'; "
                                 f"known: {', '.join(sorted(self.SETTINGS))}")
        self.settings = {**self.SETTINGS, **settings}
        self._configure()
        self.max_assignments = _check_int("max_assignments", self.settings["max_assignments"], 1)
        self.initial_assignments = _check_int("initial_assignments", self.settings["initial_assignments"], 1)
        if self.initial_assignments > self.max_assignments:
            raise ValueError(f"setting 'initial_assignments' ({self.initial_assignments}) exceeds "
                             f"'max_assignments' ({self.max_assignments})")
        agg = self.settings["aggregator"]
        if agg not in _agg.AGGREGATORS:
            raise ValueError(f"setting 'aggregator' must be one of {sorted(_agg.AGGREGATORS)}, got {agg!r}")

    def _configure(self) -> None:
        """Validate policy-specific settings; fill initial_assignments if it defaults."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self.settings.items()))
        return f"{type(self).__name__}({shown})"

    def make_aggregator(self):
        return _agg.get_aggregator(self.settings["aggregator"])

    def _fit(self, answers: pd.DataFrame, skills: pd.Series | None, known: dict | None = None):
        """The aggregator fitted to `answers`, its workers anchored on the `known` answers. In a
        harvest pass `decide` and the label refresh (`aggregate`) are handed the same answers: the
        fit is kept for those very objects, so a pass fits Dawid–Skene once, not twice."""
        last = getattr(self, "_last_fit", None)
        if last is not None and last[0] is answers and last[1] is skills and last[2] == (known or {}):
            return last[3]
        agg = self.make_aggregator()
        agg.fit(answers, skills=skills, known=known)
        self._last_fit = (answers, skills, dict(known or {}), agg)
        return agg

    def aggregate(self, answers: pd.DataFrame, skills: pd.Series | None = None,
                  known: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.Series]:
        """Final labels for export: (DataFrame item, label, confidence, raw_confidence; Series
        worker -> skill). `confidence` is the calibrated probability that the label is right
        (annotate.consensus.calibration), whatever the aggregator; `raw_confidence` is the
        aggregator's own (a Dawid–Skene posterior, or a vote share). With enough `known` answers
        (item -> label), `confidence` is mapped through the map fitted on them, and
        `labels.attrs["calibration"]` holds that map (else None)."""
        agg = self._fit(answers, skills, known)
        return self._labels(answers, agg, skills, known), agg.skills_

    def _labels(self, answers, agg, skills=None, known=None) -> pd.DataFrame:
        from .calibration import calibrated_probas, known_answer_calibration, label_confidence

        probas = calibrated_probas(answers, _calibration_fit(agg, answers, skills), skills, known)
        cal = label_confidence(answers, agg.labels_, probas=probas)
        labels = pd.DataFrame({"item": agg.labels_.index.astype(str), "label": agg.labels_.to_numpy(),
                               "confidence": cal.reindex(agg.labels_.index).to_numpy(dtype=float),
                               "raw_confidence": agg.confidence_.to_numpy(dtype=float)})
        mapping = known_answer_calibration(labels, known)
        if mapping is not None:
            labels["crowd_confidence"] = labels["confidence"]
            labels["confidence"] = mapping.apply(labels["confidence"].to_numpy(dtype=float))
        labels.attrs["calibration"] = mapping
        return labels

    def decide(self, answers: pd.DataFrame, items: pd.DataFrame, skills: pd.Series | None = None,
               known: dict[str, str] | None = None) -> dict:
        """item -> Decision for the closed items of `items` (item, bought, open). `known` (item ->
        known answer) calibrates the accuracy estimate where a mode uses it; known-answer items
        are decided like any other (workers cannot tell them apart)."""
        raise NotImplementedError


class AgreePolicy(Policy):
    """The AWS tutorial rule: buy k, then one more at a time until k workers agree on a label.

    Label when the top label has >= k votes and strictly more than any other (a k-k split among
    more than k answers is not agreement); extend by one while bought < max_assignments;
    unresolved at the cap. The reported label/confidence are the majority vote and its share.
    """

    name = "agree"
    SETTINGS = {**Policy.SETTINGS, "agree": 2}

    def _configure(self) -> None:
        self.k = _check_int("agree", self.settings["agree"], 1)
        if self.settings["initial_assignments"] is None:
            self.settings["initial_assignments"] = self.k

    def decide(self, answers, items, skills=None, known=None):
        state = _item_state(answers, items)
        if len(answers):
            # items x labels vote counts; columns in sorted label order, so idxmax's first maximum
            # is the tie rule. Vectorised: a 100,000-item batch decides in well under a second.
            votes = (answers.assign(item=answers["item"].astype(str), label=answers["label"].astype(str))
                     .groupby(["item", "label"]).size().unstack(fill_value=0).sort_index(axis=1))
            votes = votes.reindex(state.index, fill_value=0)
            counts = votes.to_numpy()
            top = counts.max(axis=1)
            total = counts.sum(axis=1)
            best = np.where(total > 0, votes.columns.to_numpy()[counts.argmax(axis=1)], None)
            conf = np.divide(top, total, out=np.zeros(len(top), dtype=float), where=total > 0)
            agreed = (top >= self.k) & ((counts == top[:, None]).sum(axis=1) == 1) & (total > 0)
        else:
            n = len(state)
            best, conf, agreed = np.full(n, None), np.zeros(n), np.zeros(n, dtype=bool)
        out = {}
        columns = (state.index, state["open"].to_numpy(), state["starved"].to_numpy(), state["bought"].to_numpy())
        for (item, is_open, starved, bought), b, c, a in zip(zip(*columns), best, conf, agreed):
            b = None if b is None else str(b)
            if a:
                out[item] = Decision("label", b, float(c))
            elif is_open:
                out[item] = Decision("wait", b, float(c))
            elif starved or bought >= self.max_assignments:
                out[item] = Decision("unresolved", b, float(c))
            else:
                out[item] = Decision("extend", b, float(c), 1)
        return out


class FixedPolicy(Policy):
    """Buy a fixed number of assignments per item, then label with the aggregator."""

    name = "fixed"
    SETTINGS = {**Policy.SETTINGS, "assignments": 3}

    def _configure(self) -> None:
        n = _check_int("assignments", self.settings["assignments"], 1)
        if self.settings["initial_assignments"] is None:
            self.settings["initial_assignments"] = n
        if self.settings["max_assignments"] < n:
            self.settings["max_assignments"] = n

    def decide(self, answers, items, skills=None, known=None):
        state = _item_state(answers, items)
        labels, conf = self._posteriors(answers, skills, known)
        out = {}
        for item, row in state.iterrows():
            lab, c = labels.get(item), float(conf.get(item, 0.0))
            out[item] = Decision("wait", lab, c) if row["open"] else Decision("label", lab, c)
        return out

    def _posteriors(self, answers, skills, known=None):
        if not len(answers):
            return {}, {}
        agg = self._fit(answers, skills, known)
        return agg.labels_.to_dict(), agg.confidence_.to_dict()


class ConfidencePolicy(Policy):
    """Buy one more assignment at a time while the posterior of the current label is below
    `threshold`, up to `max_assignments`, with worker skills learned from every answer in the
    batch (Dawid–Skene over the whole batch at each call, warm-started by prior skills).

    Dawid–Skene here is smoothed (`smoothing` pseudo-answers towards a one-coin worker of
    accuracy `default_skill`): unsmoothed, a worker seen three times and agreeing three times is
    "perfect", and posteriors are too confident to stop on (measured on rte: 0.888 accuracy at
    3.2 answers/item vs 0.916 at 4.6 with smoothing 2).

    `budget` (optional; average answers per item over the batch) caps total spend. Each call may
    commit at most `pace` of the remaining budget, least confident items first, so skills are
    re-learned between purchases; when the budget is spent, items below threshold are labelled
    with their best label (the batch's money is gone, not the item's chance). Items at the
    per-item cap, or starved, below threshold are unresolved.
    """

    name = "confidence"
    SETTINGS = {**Policy.SETTINGS, "aggregator": "dawid_skene", "threshold": 0.95, "budget": None,
                "initial_assignments": 2, "smoothing": 2.0, "default_skill": 0.7, "pace": 1.0,
                "error_shape": "uniform"}

    def _configure(self) -> None:
        self.threshold = _check_prob("threshold", self.settings["threshold"])
        self.pace = _check_prob("pace", self.settings["pace"])
        _check_prob("default_skill", self.settings["default_skill"])
        for key in ("budget", "smoothing"):
            v = self.settings[key]
            if v is None and key == "budget":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (key == "budget" and v == 0):
                raise ValueError(f"setting '{key}' must be a {'positive' if key == 'budget' else 'non-negative'} "
                                 f"number, got {v!r}")

    def make_aggregator(self):
        if self.settings["aggregator"] == "dawid_skene":
            return _agg.get_aggregator("dawid_skene", smoothing=float(self.settings["smoothing"]),
                                       default_skill=float(self.settings["default_skill"]),
                                       error_shape=self.settings["error_shape"], class_prior=self._class_prior())
        return super().make_aggregator()

    def _class_prior(self) -> str | float:
        """How the Dawid–Skene fit gets its class proportions (DawidSkene's `class_prior`)."""
        return "fit"

    def decide(self, answers, items, skills=None, known=None):
        state = _item_state(answers, items)
        if len(answers):
            agg = self._fit(answers, skills, known)
            labels, conf = agg.labels_.to_dict(), agg.confidence_.to_dict()
        else:
            labels, conf = {}, {}
        # guard against a collapsed or overconfident fit on sparse data: stop only when the
        # chosen label also holds a strict majority of the item's raw votes
        support = _support(answers, labels)
        out = {}
        wanting = []
        columns = (state.index, state["open"].to_numpy(), state["starved"].to_numpy(), state["bought"].to_numpy())
        for item, is_open, starved, bought in zip(*columns):  # per item, not per answer
            lab, c = labels.get(item), float(conf.get(item, 0.0))
            if is_open:
                out[item] = Decision("wait", lab, c)
            elif lab is not None and c >= self.threshold and support.get(item, 0.0) > 0.5:
                out[item] = Decision("label", lab, c)
            elif starved or bought >= self.max_assignments:
                out[item] = Decision("unresolved", lab, c)
            else:
                wanting.append((c, item, lab))
        wanting.sort()  # least confident first; ties by item id, so the order is deterministic
        allowed, budget_out = len(wanting), False
        if self.settings["budget"] is not None:
            allowed, budget_out = self._within_budget(state, allowed)
        for rank, (c, item, lab) in enumerate(wanting):
            if rank < allowed:
                out[item] = Decision("extend", lab, c, 1)
            elif budget_out and lab is not None:
                out[item] = Decision("label", lab, c)
            else:
                # not bought this call (pacing): nothing outstanding, so no "wait"; a later call
                # may still buy it, so for now it is unresolved
                out[item] = Decision("unresolved", lab, c)
        return out

    def _within_budget(self, state: pd.DataFrame, allowed: int) -> tuple[int, bool]:
        """(answers that may be bought now, whether the budget is spent), the budget being
        `budget` answers per item; money committed counts answers received plus the slots
        outstanding on open HITs, and only a `pace` share of what remains goes in one call."""
        spent = int(np.where(state["open"], np.maximum(state["bought"], state["n"]), state["n"]).sum())
        remaining = int(self.settings["budget"] * len(state)) - spent
        return max(0, min(allowed, int(np.ceil(self.pace * remaining)))), remaining <= 0


def _support(answers: pd.DataFrame, labels: dict) -> dict:
    """item -> share of its answers that give its chosen label (vectorised)."""
    if not len(answers):
        return {}
    a = answers.astype({"item": str, "label": str})
    chosen = a["item"].map(pd.Series(labels, dtype=object)).to_numpy(dtype=object)
    return pd.Series(a["label"].to_numpy(dtype=object) == chosen, index=a["item"].to_numpy()) \
        .groupby(level=0).mean().to_dict()


class AdaptivePolicy(ConfidencePolicy):
    """The default: the confidence rule under a batch budget, paced, least confident first.

    Defaults chosen on the replay benchmark (one setting for every dataset): threshold 0.99,
    budget 4 answers/item on average (up to 9 on any one item), pace 0.25 (at most a quarter of
    the remaining budget per call, so ~25 rounds).

    What a requester asks for (batch.toml [consensus]):
    - `answers_per_item = N`: spend N answers per item on average (the `budget`), where it helps
      most: least confident items first, whatever the threshold. The Dawid–Skene fit's class
      proportions lean on the answers' own shares here (see `_class_prior`).
    - `target_accuracy = T`: buy answers, least confident first, until the batch's *estimated*
      accuracy (mean calibrated probability, annotate.consensus.calibration) reaches T, within the
      per-item cap and any `answers_per_item`; then every item is labelled.

    In every mode, an answer that could not change the item's label is not bought: no possible
    answer from a good worker of this crowd (its 90th-percentile skill) would move the label.
    """

    name = "adaptive"
    SETTINGS = {**ConfidencePolicy.SETTINGS, "threshold": 0.99, "budget": 4.0, "pace": 0.25,
                "answers_per_item": None, "target_accuracy": None}

    def _configure(self) -> None:
        apd, target = self.settings["answers_per_item"], self.settings["target_accuracy"]
        if apd is not None:
            if isinstance(apd, bool) or not isinstance(apd, (int, float)) or not apd >= 1:
                raise SettingError("answers_per_item", f"setting 'answers_per_item' must be a number >= 1 "
                                   f"(answers per item on average) or 'budget' (spend [budget] max_usd), got {apd!r}")
            if self.settings["budget"] not in (None, self.SETTINGS["budget"], apd):
                raise SettingError("answers_per_item", "settings 'answers_per_item' and 'budget' say the same "
                                   "thing; give one")
            self.settings["budget"] = float(apd)
        if target is not None:
            if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.5 <= target < 1:
                raise SettingError("target_accuracy", f"setting 'target_accuracy' must be a number in [0.5, 1), "
                                   f"got {target!r}")
            if apd is None and self.settings["budget"] == self.SETTINGS["budget"]:
                self.settings["budget"] = None  # the target, the per-item cap and [budget] bound spend
        super()._configure()
        if apd is not None and self.settings["threshold"] == self.SETTINGS["threshold"]:
            self.threshold = 1.0  # spend the budget: only "no answer could change it" stops an item

    def _class_prior(self) -> str | float:
        # answers_per_item: the class proportions are VOTES_WEIGHT parts the answers' own shares.
        # Smoothed and re-estimated by EM alone on sparse answers they can run away to one class
        # (bluebirds at 2 answers per item: all 108 items class 0), every agreeing pair then looks
        # certain, no answer "could change" it, and the budget never reaches those items:
        # answers_per_item = 3 lost to fixed-3 Dawid–Skene (0.700 against 0.720). Held at the
        # vote shares alone, a rare class is overstated by noise (d_product, 88/12, at 3: 0.930
        # against fixed-k's 0.937 at that spend). Only in this mode: as the default it cost the
        # spammer-heavy synthetic crowd points (vote shares are flattened by spammers), and
        # target_accuracy's estimate is calibrated on the re-estimated fit.
        equal_spend = self.settings["answers_per_item"] is not None and self.settings["target_accuracy"] is None
        return VOTES_WEIGHT if equal_spend else "fit"

    def decide(self, answers, items, skills=None, known=None):
        if not len(answers):
            return super().decide(answers, items, skills)
        agg = self._fit(answers, skills, known)
        return self._decide_fitted(answers, items, agg, known)

    def _decide_fitted(self, answers, items, agg, known=None):
        state = _item_state(answers, items)
        labels, conf = agg.labels_.to_dict(), agg.confidence_.to_dict()
        support = _support(answers, labels)
        # where the raw votes do not back the model's label (support <= 1/2), the model's own
        # "no answer could change it" is not trusted either
        movable = {i: m or support.get(i, 0.0) <= 0.5 for i, m in _could_change(agg).items()}
        target = self.settings["target_accuracy"]
        if target is not None:
            calibrated, mapping, crowd = self._calibrated(answers, agg, known)
        # Steering by an estimate calibrated on known answers, an item no single answer could move
        # is still bought for (after every movable one) while even the estimate's upper end is
        # short of the target: the known answers then show a crowd agreeing on wrong labels, and
        # more answers move the fit's view of its workers, which one answer cannot (bluebirds at
        # 0.85: it stopped at 0.769 with every movable item spent, where fixed-9 Dawid–Skene
        # reaches 0.856). Not while only the lower end is short: temp at 0.90 then went from 3.88
        # to 5.39 answers/item for 0.002 more accuracy.
        frozen_too = target is not None and mapping is not None
        frozen = []
        out = {}
        wanting = []
        columns = (state.index, state["open"].to_numpy(), state["starved"].to_numpy(), state["bought"].to_numpy())
        for item, is_open, starved, bought in zip(*columns):
            lab, c = labels.get(item), float(conf.get(item, 0.0))
            capped, fixed = starved or bought >= self.max_assignments, not movable.get(item, True)
            if is_open:
                out[item] = Decision("wait", lab, c)
            elif lab is None:  # no usable answer yet
                out[item] = Decision("unresolved", lab, c) if capped else Decision("extend", lab, c, 1)
            elif target is None and c >= self.threshold and support.get(item, 0.0) > 0.5:
                out[item] = Decision("label", lab, c)
            elif frozen_too and fixed and not capped:
                frozen.append((c, item, lab))
            elif capped or fixed:
                # nothing more to buy for it (or nothing that could change its label): decided
                out[item] = Decision("label" if target is not None or fixed else "unresolved", lab, c)
            else:
                wanting.append((c, item, lab))
        wanting.sort()  # least confident first; ties by item id, so the order is deterministic
        allowed = len(wanting)
        budget_out = False
        if target is not None:
            # labels the raw votes do not back (no strict majority) come first, whatever the
            # estimate: on sparse data Dawid–Skene can collapse onto one class and call every item
            # certain (measured on bluebirds at 2 answers/item: all 108 items one class, "0.999")
            wanting.sort(key=lambda w: (support.get(w[1], 0.0) > 0.5, w[0], w[1]))
            # With a known-answer calibration a collapse shows in the estimate itself (the known
            # items come out wrong): the estimate alone decides, and items stay first in line.
            unsupported = 0 if mapping is not None else sum(support.get(i, 0.0) <= 0.5 for _, i, _ in wanting)
            # the estimate is of the labels the batch delivers: known-answer items are not among them
            scored_items = [i for i in state.index
                            if (not out.get(i) or out[i].action != "wait") and i not in (known or {})]
            scored = [calibrated.get(i, 0.0) for i in scored_items]
            estimate = float(np.mean(scored)) if scored else 1.0
            if mapping is not None and scored:
                # A few dozen known answers make the estimate noisy; stopping the moment it first
                # crosses T stops on its lucky swings (measured: rte at 0.85 delivered 0.837). Stop
                # when its lower end (estimate − STOP_Z standard errors) reaches T instead.
                sd = (mapping.mean_variance(np.asarray([crowd.get(i, 0.5) for i in scored_items]))
                      + poisson_binomial_variance(scored)) ** 0.5
                if estimate + STOP_Z * sd < target:
                    wanting += sorted(frozen)  # short even at its upper end: frozen items too
                    allowed, frozen = len(wanting), []
                estimate -= STOP_Z * sd
            out.update((item, Decision("label", lab, c)) for c, item, lab in frozen)
            deficit = (target - estimate) * len(scored)
            if deficit <= 0:
                allowed = unsupported
                budget_out = not unsupported  # target reached: everything is labelled
            else:
                # the fewest least-confident items whose doubt covers the gap
                doubt = np.cumsum([1.0 - calibrated.get(i, c) for c, i, _ in wanting[unsupported:]])
                need = int(np.searchsorted(doubt, deficit) + 1)
                allowed = min(allowed, unsupported + max(1, need))
        if self.settings["budget"] is not None:
            allowed, out_of_budget = self._within_budget(state, allowed)
            budget_out = budget_out or out_of_budget
        for rank, (c, item, lab) in enumerate(wanting):
            if rank < allowed:
                out[item] = Decision("extend", lab, c, 1)
            elif budget_out or target is not None:
                out[item] = Decision("label", lab, c)
            else:
                out[item] = Decision("unresolved", lab, c)
        return out

    def _calibrated(self, answers, agg, known=None):
        """(item -> calibrated probability that its (Dawid–Skene) label is right, mapped through
        the known answers' calibration when there are enough of them; that map or None; item ->
        the crowd-only calibrated probability the map was applied to)."""
        labels = self._labels(answers, agg, known=known)
        crowd = labels["crowd_confidence"] if "crowd_confidence" in labels else labels["confidence"]
        return (dict(zip(labels["item"], labels["confidence"])), labels.attrs["calibration"],
                dict(zip(labels["item"], crowd)))


# answers_per_item: the weight of the answers' own class shares in the Dawid–Skene fit's class
# proportions (DawidSkene's class_prior; 0 is EM's own estimate, 1 the vote shares alone). Measured
# on the replay bench (3 seeds, answers_per_item = 3, 4, 5): 0.3 beats fixed-k Dawid–Skene on
# bluebirds and d_product both; 0 loses bluebirds at 3, 0.5 and 1 lose d_product at 3.
VOTES_WEIGHT = 0.3

# target_accuracy with known answers stops when the estimate's lower end, this many standard
# errors below it (one-sided 84%), reaches the target.
STOP_Z = 1.0


class SettingError(ValueError):
    """A bad [consensus] setting; `setting` names it (the CLI reports consensus.<setting>)."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


def _calibration_fit(agg, answers: pd.DataFrame, skills: pd.Series | None):
    """The fit the calibration judges labels with: the aggregator itself, or for a Dawid–Skene
    whose class proportions lean on the votes (class_prior not "fit") the same model refitted
    the standard way, so a label's calibrated confidence does not depend on how it was chosen."""
    if getattr(agg, "class_prior", "fit") == "fit":
        return agg
    ref = copy.copy(agg)
    ref.class_prior = "fit"
    return ref.fit(answers, skills=skills, known=getattr(agg, "known_answers_", None))


def _could_change(agg) -> dict:
    """item -> whether one more answer, from a good worker of this crowd, could change its label.

    A good worker: one-coin at the crowd's 90th-percentile skill (at least 0.6). Answer g moves the
    label from b to g iff p(g)·s > p(b)·(1 - s)/(K - 1)."""
    p = agg.probas_.to_numpy()
    k = p.shape[1]
    if k < 2 or not len(p):
        return {}
    skills = agg.skills_.to_numpy(dtype=float)
    s = float(np.clip(np.quantile(skills, 0.9) if len(skills) else 0.7, 0.6, 0.99))
    top2 = np.sort(p, axis=1)[:, -2:]
    flips = top2[:, 0] * s > top2[:, 1] * (1 - s) / (k - 1)
    return dict(zip(agg.probas_.index, flips))
