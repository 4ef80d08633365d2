"""The end-to-end demo on the local target: post → simulated crowd → harvest → export (→ train).

Each run gets a fresh folder of its own, `<workdir>/annotate-demo/run-<N>/` (the next free N), so a
run never deletes an earlier one's files; `reuse=True` (`annotate demo --reuse`) runs in the latest
run folder instead, emptied first, for repeated runs that should not pile up. It runs with the
embedded marketplace and a simulated crowd in this process. The crowd works through the
marketplace's worker pages over HTTP, learning each item's true label only from the batch's
hidden gold column; annotate itself talks to the marketplace with boto3, as it would to MTurk.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from annotate.config import load_batch
from annotate.errors import UserError
from annotate.export import export_batch
from annotate.fees import format_money
from annotate.harvest import harvest
from annotate.post import post_batch
from annotate.store import Store
from annotate.tasktypes import get_task_type
from annotate.workspace import Workspace

EXAMPLES = ("digits", "digits-auto", "iris", "reviews-sentiment", "shapes-multilabel", "reviews-multilabel",
            "shapes-boxes", "shapes-segmentation", "news-entities", "words-text")


@dataclass
class CrowdSettings:
    workers: int = 25
    accuracy: tuple[float, float] = (0.75, 0.97)
    spammer_share: float = 0.1


def examples_dir() -> Path:
    return Path(str(resources.files("annotate.examples")))


def available_examples() -> list[str]:
    root = examples_dir()
    return sorted(p.name for p in root.iterdir() if (p / "batch.toml").is_file())


# The Crowd HTML Elements layout for each task type (hit_templates/crowd-*.html.j2).
CROWD_TEMPLATES = {
    "image-classification": "crowd-classifier.html.j2", "text-classification": "crowd-classifier.html.j2",
    "image-classification-multilabel": "crowd-multilabel.html.j2", "text-classification-multilabel": "crowd-multilabel.html.j2",
    "bounding-box": "crowd-bounding-box.html.j2", "semantic-segmentation": "crowd-semantic-segmentation.html.j2",
    "named-entity-recognition": "crowd-named-entity.html.j2", "free-text": "crowd-free-text.html.j2",
}


def use_crowd_template(batch_dir: Path) -> str:
    """Point a copied example's batch.toml at the crowd-element layout of its task type."""
    path = batch_dir / "batch.toml"
    text = path.read_text(encoding="utf-8")
    task_type = re.search(r'(?m)^task_type\s*=\s*"([^"]+)"', text)
    if task_type is None or task_type.group(1) not in CROWD_TEMPLATES:
        raise UserError("no crowd-element template for this example's task type", file=str(path), field="task_type")
    name = CROWD_TEMPLATES[task_type.group(1)]
    path.write_text(re.sub(r'(?m)^template\s*=\s*"[^"]*"', f'template = "{name}"', text, count=1), encoding="utf-8")
    return name


def demo_folder(workdir: str | Path, reuse: bool = False) -> Path:
    """The folder this run works in: `<workdir>/annotate-demo/run-<N>`, new (N = the highest so far
    + 1), or with `reuse` the highest one, emptied (run-1 when there is none yet)."""
    parent = Path(workdir).resolve() / "annotate-demo"
    runs = [int(m.group(1)) for p in (parent.iterdir() if parent.is_dir() else ())
            if (m := re.fullmatch(r"run-(\d+)", p.name)) and p.is_dir()]
    latest = max(runs, default=0)
    if reuse and latest:
        root = parent / f"run-{latest}"
        shutil.rmtree(root)  # a run folder is the demo's own: everything in it came from a demo run
    else:
        root = parent / f"run-{latest + 1}"
    root.mkdir(parents=True)  # fails rather than share a folder with a demo started at the same moment
    return root


def run_demo(
    example: str = "digits",
    workdir: str | Path = ".",
    *,
    seed: int = 0,
    crowd: CrowdSettings | None = None,
    train: bool = True,
    timeout: float = 600.0,
    on_progress: Callable[[str, int, int], None] | None = None,
    template: str = "plain",
    reuse: bool = False,
) -> dict:
    from annotate.marketplace import MarketplaceServer
    from annotate.marketplace.crowd import SimulatedCrowd
    from annotate.marketplace.structured_crowd import StructuredCrowd

    if example not in available_examples():
        raise UserError(f"unknown example {example!r} (available: {', '.join(available_examples())})", field="--example")
    if template not in ("plain", "crowd"):
        raise UserError(f"unknown template style {template!r} (plain or crowd)", field="--template")
    crowd = crowd or CrowdSettings()
    root = demo_folder(workdir, reuse)
    batch_dir = root / example
    shutil.copytree(examples_dir() / example, batch_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if template == "crowd":
        use_crowd_template(batch_dir)
    ws = Workspace(root / ".annotate").ensure()
    batch = load_batch(batch_dir)
    task_type = get_task_type(batch.task_type)
    started = time.monotonic()

    with MarketplaceServer(ws.marketplace_db) as server:
        # Boxes, masks, spans, ticks and text need workers who can draw, paint and type.
        extra = {} if task_type.single_label else {"labels": batch.labels}
        workers = (SimulatedCrowd if task_type.single_label else StructuredCrowd)(
            server.url, batch.gold_annotations(), workers=crowd.workers, accuracy=crowd.accuracy,
            spammer_share=crowd.spammer_share, seed=seed, **extra)
        # Reproducible at a fixed seed: HITs are created one at a time (so the marketplace lists them
        # in item order), and the crowd and the harvest take turns — a full pass of the crowd over
        # the HITs on offer, then a harvest — instead of racing in two threads, where scheduling
        # decided which worker met which HIT and when an item was extended.
        posted = post_batch(ws, batch_dir, target="local", endpoint_url=server.url, remember_endpoint=False,
                            concurrency=1,
                            progress=(lambda n, t: on_progress("post", n, t)) if on_progress else None)
        try:
            while True:
                workers.work()
                # One HIT at a time here too when automation rounds post (the crowd meets them in order).
                [result] = harvest(ws, [batch.name], endpoint_url=server.url,
                                   concurrency=1 if batch.automation and batch.automation.enabled else None)
                result.raise_failure()
                if on_progress:
                    on_progress("harvest", result.decided, result.items)
                if result.done:
                    break
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"the demo did not finish in {timeout:.0f} s "
                                       f"({result.decided}/{result.items} items decided)")
        finally:
            workers.stop()
    harvest_seconds = time.monotonic() - started

    exported = export_batch(ws, batch.name, root / "exports", split=0.8, seed=seed)
    store = Store(ws.store_path)
    labels = store.labels(batch.name)
    gold = {i.id: task_type.parse_gold(i.gold) for i in batch.items if i.gold is not None}
    labelled = {k: v for k, v in labels.items() if v["status"] == "labelled"}
    # Accuracy against the hidden gold: exact for classification, the type's own score otherwise
    # (e.g. box IoU, mask IoU, span F1).
    correct = sum(task_type.score(json.loads(v["value"]), gold[k]) for k, v in labelled.items() if k in gold)
    scored = sum(1 for k in labelled if k in gold)
    automated = machine_figures(store, batch, task_type, gold, correct, scored)
    money = store.money(batch.name)
    counts = store.assignment_counts(batch.name)
    summary = {
        "example": example,
        "batch": batch.name,
        "workdir": str(root),
        "home": str(ws.home),
        "items": len(batch.items),
        "labelled": len(labelled),
        "unresolved": sum(1 for v in labels.values() if v["status"] == "unresolved"),
        "accuracy": round(correct / scored, 4) if scored else None,
        **automated,
        "assignments": sum(counts.values()),
        "answers_per_item": round(sum(counts.values()) / len(batch.items), 3),
        "cost_usd": format_money(money["spent"] + money["committed"]),
        "manifest": str(exported.manifest),
        "csv": str(exported.csv),
        "train_manifest": str(exported.train_manifest),
        "validation_manifest": str(exported.validation_manifest),
        "hits_created": posted.created,
        "api_calls": store.api_calls(batch.name),
        "seconds": round(harvest_seconds, 2),
    }
    if train and task_type.single_label:
        if batch.config.get("training", {}).get("features"):
            summary.update(_train(ws, batch.name, exported))
        else:  # e.g. a text: the local model reads numeric columns only
            summary["training"] = ("skipped: the local scikit-learn model reads numeric columns, and "
                                   "training.features names none")
    return summary


def machine_figures(store: Store, batch, task_type, gold: dict, correct: float, scored: int) -> dict:
    """[automation] batches: items labelled by machine and their accuracy against the hidden gold, and
    `accuracy` over every final label, the crowd's and the machine's ({} for other batches)."""
    if not (batch.automation and batch.automation.enabled):
        return {}
    machine = store.machine_labels(batch.name)
    right = sum(task_type.score(json.loads(m["value"]), gold[k]) for k, m in machine.items() if k in gold)
    seen = sum(1 for k in machine if k in gold)
    return {"accuracy": round((correct + right) / (scored + seen), 4) if scored + seen else None,
            "human_accuracy": round(correct / scored, 4) if scored else None,
            "machine_labelled": len(machine), "machine_share": round(len(machine) / len(batch.items), 4),
            "machine_accuracy": round(right / seen, 4) if seen else None,
            "rounds": len(store.automation_rounds(batch.name))}


def _train(ws: Workspace, batch_name: str, exported) -> dict:
    """Train the local scikit-learn model on the export, as `annotate train --target local` does."""
    from annotate.sagemaker.local import train_local_from_export

    # A fixed job name: each run's folder starts empty, and the figures name no clock time.
    trained = train_local_from_export(ws, batch_name, exported, algorithm="sklearn", job=f"{batch_name}-demo")
    return {"model_accuracy": round(trained.model_accuracy, 4), "model_artifact": str(trained.model_artifact)}


TABLE_COLUMNS = ("items", "accuracy", "answers_per_item", "cost_usd", "model_accuracy", "seconds")


def demo_table(examples: list[str] | None = None, *, seed: int = 0, workdir: str | Path | None = None) -> list[dict]:
    """One row of figures per example at `seed` (what the README's demo table shows)."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="annotate-demo-table-") as scratch:
        for example in examples or available_examples():
            summary = run_demo(example, workdir or scratch, seed=seed)
            rows.append({"example": example, **{k: summary.get(k) for k in TABLE_COLUMNS}})
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| `annotate demo --example …` | items | accuracy vs hidden gold | answers/item | cost | model accuracy "
             "| wall time |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        model = "–" if r["model_accuracy"] is None else f"{r['model_accuracy']:.4f}"
        lines.append(f"| {r['example']} | {r['items']} | {r['accuracy']:.4f} | {r['answers_per_item']:.2f} | "
                     f"${r['cost_usd']} | {model} | {r['seconds']:.0f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """scripts/demo_table: regenerate the README's demo table (--json for the raw rows)."""
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/demo_table")
    parser.add_argument("examples", nargs="*", help="default: every example")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = demo_table(args.examples or None, seed=args.seed)
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))


if __name__ == "__main__":
    main()
