"""A batch report: one self-contained HTML file of plots a requester would rather look at than read.

    path = write_report(ws, "digits", "report.html")

Everything comes from the store (no marketplace call): progress over time, money spent and
committed over time, answers per item, confidence, agreement by class with the confusion matrix of
workers' answers against consensus, worker accuracy against volume (excluded and blocked workers marked), and
for structured task types a few items with their consolidated boxes, masks or spans drawn. Plots
are matplotlib figures inlined as SVG: no CDN, no script, opens offline and prints well.
"""

from __future__ import annotations

import html
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from annotate.errors import UserError
from annotate.fees import assignment_cost, format_money
from annotate.store import Store
from annotate.workspace import Workspace

SAMPLES = 6  # structured items drawn
CLASS_MATRIX_MAX = 30  # classes beyond this make an unreadable matrix: the most frequent are kept


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")  # no display; before pyplot is imported anywhere
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 96, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.fonttype": "none"})
    return plt


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    _matplotlib().close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: inlined in HTML


def _times(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")


class Report:
    """The data of one batch's report, read once from the store."""

    def __init__(self, store: Store, batch: str):
        row = store.get_batch(batch)
        if row is None:
            raise UserError(f"no batch named {batch!r} in {store.path}", field="BATCH")
        self.store, self.batch, self.row = store, batch, row
        conn = store.db.conn
        self.labels = pd.read_sql_query("select * from labels where batch = ?", conn, params=[batch])
        self.assignments = pd.read_sql_query(
            "select assignment_id, hit_id, item_id, worker_id, status, submit_time, stored_at, approved_at, label, "
            "quarantine from assignments where batch = ?", conn, params=[batch])
        self.hits = pd.read_sql_query("select hit_id, item_id, max_assignments, created_at from hits where batch = ?",
                                      conn, params=[batch])
        self.extensions = pd.read_sql_query("select added, created_at from extensions where batch = ?", conn, params=[batch])
        self.workers = pd.read_sql_query(
            "select b.worker_id, b.answers, b.skill, b.gold_seen, b.gold_correct, coalesce(w.blocked, 0) as blocked, "
            "coalesce(w.excluded, 0) as excluded "
            "from batch_workers b left join workers w on w.worker_id = b.worker_id where b.batch = ?", conn, params=[batch])
        self.items = pd.read_sql_query("select item_id, data from items where batch = ? order by position", conn, params=[batch])
        self.cost = assignment_cost(Decimal(row["reward"]), 1, bool(row.get("masters")))

    # ------------------------------------------------------------------ plots
    def progress(self):
        plt = _matplotlib()
        fig, ax = plt.subplots(figsize=(6.2, 2.8))
        # An item is decided when the last answer it needed arrived (decided_at is rewritten by
        # each pass's refresh, so it says when the label was last confirmed, not first reached).
        last = _times(self.assignments["submit_time"].fillna(self.assignments["stored_at"])).groupby(
            self.assignments["item_id"]).max().rename("at")
        decided = self.labels.join(last, on="item_id")
        decided["at"] = decided["at"].fillna(_times(decided["decided_at"]))
        decided = decided.dropna(subset=["at"]).sort_values("at")
        for status, color in (("labelled", "#2ca02c"), ("unresolved", "#d62728")):
            part = decided[decided["status"] == status]
            if len(part):
                ax.step(part["at"], np.arange(1, len(part) + 1), where="post", color=color, label=status)
        ax.axhline(len(self.items), color="#999", linestyle=":", label=f"items ({len(self.items)})")
        ax.set_ylabel("items")
        ax.set_title("Items decided over time")
        ax.legend(loc="lower right", frameon=False)
        fig.autofmt_xdate()
        return fig

    def money(self):
        """Spent (answers submitted, at their submit time) and committed (slots bought, at purchase)."""
        plt = _matplotlib()
        fig, ax = plt.subplots(figsize=(6.2, 2.8))
        cost = float(self.cost)
        bought = pd.concat([
            pd.DataFrame({"at": _times(self.hits["created_at"]), "n": self.hits["max_assignments"]}),
            pd.DataFrame({"at": _times(self.extensions["created_at"]), "n": self.extensions["added"]}),
        ]).dropna().sort_values("at")
        done = self.assignments[self.assignments["status"].isin(["Submitted", "Approved"])]
        spent = pd.DataFrame({"at": _times(done["submit_time"].fillna(done["stored_at"]))}).dropna().sort_values("at")
        if len(bought):
            ax.step(bought["at"], bought["n"].cumsum() * cost, where="post", color="#ff7f0e", label="committed (bought)")
        if len(spent):
            ax.step(spent["at"], np.arange(1, len(spent) + 1) * cost, where="post", color="#1f77b4", label="spent (submitted)")
        ax.set_ylabel("US$ (reward + fees)")
        ax.set_title(f"Money over time — ${format_money(Decimal(str(round(len(spent) * cost, 2))))} spent")
        ax.legend(loc="upper left", frameon=False)
        fig.autofmt_xdate()
        return fig

    def answers_per_item(self):
        plt = _matplotlib()
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
        counts = self.assignments.groupby("item_id").size().reindex(self.items["item_id"], fill_value=0)
        bins = np.arange(counts.min(), counts.max() + 2) - 0.5 if len(counts) else 10
        ax.hist(counts, bins=bins, color="#1f77b4", rwidth=0.85)
        ax.set_xlabel("answers")
        ax.set_ylabel("items")
        ax.set_title(f"Answers per item (mean {counts.mean():.2f})")
        return fig

    def confidence(self):
        plt = _matplotlib()
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
        values = self.labels["confidence"].dropna()
        ax.hist(values, bins=np.linspace(0, 1, 21), color="#9467bd", rwidth=0.9)
        ax.set_xlabel("confidence of the consolidated label")
        ax.set_ylabel("items")
        ax.set_title("Confidence")
        return fig

    def confusion(self):
        """Workers' answers against the consensus label (single-label task types only)."""
        plt = _matplotlib()
        answers = self.assignments.dropna(subset=["label"]).merge(
            self.labels[self.labels["status"] == "labelled"][["item_id", "label"]].rename(columns={"label": "consensus"}),
            on="item_id")
        if answers.empty:
            return None
        classes = list(json.loads(self.row["labels"])) if isinstance(self.row["labels"], str) else list(self.row["labels"])
        if len(classes) > CLASS_MATRIX_MAX:
            keep = answers["consensus"].value_counts().index[:CLASS_MATRIX_MAX]
            classes = [c for c in classes if c in set(keep)]
            answers = answers[answers["consensus"].isin(classes) & answers["label"].isin(classes)]
        matrix = pd.crosstab(answers["consensus"], answers["label"]).reindex(index=classes, columns=classes, fill_value=0)
        share = matrix.div(matrix.sum(axis=1).replace(0, np.nan), axis=0).fillna(0)
        agreement = np.diag(share.values)
        size = max(4.0, 0.42 * len(classes) + 2)
        fig, (left, right) = plt.subplots(1, 2, figsize=(size * 2, size), gridspec_kw={"width_ratios": [1, 1.2]})
        left.barh(range(len(classes)), agreement, color="#2ca02c")
        left.set_yticks(range(len(classes)), classes)
        left.invert_yaxis()
        left.set_xlim(0, 1)
        left.set_xlabel("share of answers agreeing with consensus")
        left.set_title("Agreement by class")
        image = right.imshow(share.values, cmap="Blues", vmin=0, vmax=1)
        right.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
        right.set_yticks(range(len(classes)), classes)
        right.set_xlabel("worker's answer")
        right.set_ylabel("consensus")
        right.set_title("Confusion: answers vs consensus")
        if len(classes) <= 12:
            for (i, j), n in np.ndenumerate(matrix.values):
                if n:
                    right.text(j, i, str(n), ha="center", va="center", fontsize=7,
                               color="white" if share.values[i, j] > 0.6 else "black")
        fig.colorbar(image, ax=right, fraction=0.046)
        fig.tight_layout()
        return fig

    def workers_plot(self):
        plt = _matplotlib()
        if self.workers.empty:
            return None
        fig, ax = plt.subplots(figsize=(6.2, 3.2))
        w = self.workers
        ok = w[(w["blocked"] == 0) & (w["excluded"] == 0)]
        ax.scatter(ok["answers"], ok["skill"], s=22, color="#1f77b4", alpha=0.8, label="working")
        # Excluded (the project's exclusion qualification) and blocked (by a person) are marked apart.
        for flag, marker, color in (("excluded", "x", "#ff7f0e"), ("blocked", "X", "#d62728")):
            marked = w[w[flag] != 0]
            if len(marked):
                ax.scatter(marked["answers"], marked["skill"], s=46, marker=marker, color=color, label=flag)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("answers in this batch")
        ax.set_ylabel("estimated accuracy")
        ax.set_title(f"Workers ({len(w)}): accuracy against volume")
        ax.legend(loc="lower right", frameon=False)
        return fig

    def samples(self) -> str:
        """A few items with their consolidated boxes, masks or spans drawn (structured types)."""
        task_type = self.row["task_type"]
        labelled = self.labels[self.labels["status"] == "labelled"].head(SAMPLES)
        if labelled.empty or task_type not in ("bounding-box", "semantic-segmentation", "named-entity-recognition"):
            return ""
        data = dict(zip(self.items["item_id"], self.items["data"]))
        batch_dir = Path(self.row["dir"]) if self.row.get("dir") else None
        classes = list(json.loads(self.row["labels"])) if isinstance(self.row["labels"], str) else list(self.row["labels"])
        if task_type == "named-entity-recognition":
            return "".join(_spans_html(json.loads(data[r.item_id]), json.loads(r.value), classes) for r in labelled.itertuples())
        plt = _matplotlib()
        fig, axes = plt.subplots(1, len(labelled), figsize=(2.6 * len(labelled), 2.4), squeeze=False)
        for ax, r in zip(axes[0], labelled.itertuples()):
            item = json.loads(data[r.item_id])
            value = json.loads(r.value)
            picture = _picture(batch_dir, item.get("source-ref"))
            if picture is not None:
                ax.imshow(picture)
            if task_type == "bounding-box":
                from matplotlib.patches import Rectangle

                for box in value["boxes"]:
                    color = _color(classes, box["label"])
                    ax.add_patch(Rectangle((box["left"], box["top"]), box["width"], box["height"], fill=False,
                                           edgecolor=color, linewidth=1.6))
                    ax.text(box["left"], box["top"] - 2, box["label"], color=color, fontsize=7)
                size = value["image_size"]
                ax.set_xlim(0, size["width"])
                ax.set_ylim(size["height"], 0)
            else:
                from annotate.tasktypes.semantic_segmentation import decode_mask

                mask = decode_mask(value["mask"], classes)
                overlay = np.zeros(mask.shape + (4,))
                for index, label in enumerate(classes, start=1):
                    rgb = [int(_color(classes, label)[k:k + 2], 16) / 255 for k in (1, 3, 5)]
                    overlay[mask == index] = rgb + [0.55]
                ax.imshow(overlay)
            ax.set_title(f"{r.item_id} ({r.confidence:.2f})", fontsize=8)
            ax.axis("off")
        fig.tight_layout()
        return _svg(fig)


def _color(classes: list[str], label: str) -> str:
    from annotate.tasktypes._common import class_colors

    palette = class_colors(classes)
    return palette[classes.index(label) + 1] if label in classes else "#000000"


def _picture(batch_dir: Path | None, ref: str | None):
    if not ref or batch_dir is None or "://" in ref:
        return None
    path = (batch_dir / ref).resolve()
    if not path.is_file():
        return None
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _spans_html(item: dict, value: dict, classes: list[str]) -> str:
    text = str(item.get("source", ""))
    out, pos = [], 0
    for e in sorted(value.get("entities", []), key=lambda e: e["startOffset"]):
        out.append(html.escape(text[pos:e["startOffset"]]))
        color = _color(classes, e["label"])
        out.append(f'<mark style="background:{color}33;border-bottom:2px solid {color}" title="{html.escape(e["label"])}">'
                   f'{html.escape(text[e["startOffset"]:e["endOffset"]])}<sub>{html.escape(e["label"])}</sub></mark>')
        pos = e["endOffset"]
    out.append(html.escape(text[pos:]))
    return f'<p class="spans">{"".join(out)}</p>'


def build_html(report: Report) -> str:
    row = report.row
    labels = report.labels
    counts = labels["status"].value_counts()
    money = report.store.money(report.batch)
    quarantined = int(report.assignments["quarantine"].notna().sum())
    facts = [
        ("items", len(report.items)), ("labelled", int(counts.get("labelled", 0))),
        ("unresolved", int(counts.get("unresolved", 0))), ("answers", len(report.assignments)),
        ("quarantined answers", quarantined), ("workers", len(report.workers)),
        ("spent", f"${format_money(money['spent'])}"), ("committed", f"${format_money(money['committed'])}"),
        ("target", row["target"]), ("task type", row["task_type"]),
    ]
    sections = [("Progress", report.progress()), ("Money", report.money()),
                ("Answers per item", report.answers_per_item()), ("Confidence", report.confidence())]
    if row["task_type"] in ("image-classification", "text-classification"):
        sections.append(("Agreement and confusion", report.confusion()))
    sections.append(("Workers", report.workers_plot()))
    figures = []
    for title, fig in sections:
        if fig is None:
            continue
        figures.append(f'<figure class="plot" data-plot="{html.escape(title)}">{_svg(fig)}'
                       f"<figcaption>{html.escape(title)}</figcaption></figure>")
    samples = report.samples()
    if samples:
        figures.append(f'<figure class="plot samples" data-plot="Consolidated labels">{samples}'
                       f"<figcaption>A few consolidated labels</figcaption></figure>")
    table = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>annotate report: {html.escape(report.batch)}</title>
<style>
 body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px 24px; color: #1b1f24; }}
 h1 {{ font-size: 1.4rem; }} table.facts {{ border-collapse: collapse; margin-bottom: 16px; }}
 table.facts th {{ text-align: left; padding: 2px 14px 2px 0; color: #4b5560; font-weight: 500; }}
 .plots {{ display: flex; flex-wrap: wrap; gap: 18px; }} figure.plot {{ margin: 0; }} figure.plot svg {{ max-width: 100%; height: auto; }}
 figcaption {{ font-size: .85rem; color: #4b5560; }} .spans {{ line-height: 2; }} mark sub {{ font-size: .65em; margin-left: 2px; }}
</style></head>
<body>
<h1>annotate report: {html.escape(report.batch)}</h1>
<p>Generated {html.escape(generated)} from {html.escape(str(report.store.path))}.</p>
<table class="facts">{table}</table>
<div class="plots">{"".join(figures)}</div>
</body></html>
"""


def write_report(ws: Workspace, batch: str, out: str | Path | None = None) -> Path:
    """Write the batch's report (default: report-<batch>.html in the current folder)."""
    if not ws.store_path.exists():
        raise UserError(f"no store at {ws.store_path} (post a batch first)")
    store = Store(ws.store_path)
    report = Report(store, batch)
    path = Path(out) if out else Path(f"report-{batch}.html")
    text = build_html(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # never a half-written report
    return path

