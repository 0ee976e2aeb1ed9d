"""Calibration report: Markdown + HTML with PNG plots (score histograms, precision–recall)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from moderation.domain import RiskTier
from moderation.thresholds.calibration import CalibrationRun, CategoryCalibration
from moderation.thresholds.presets import score_band
from moderation.thresholds.tiers import LADDER

__all__ = ["ReportFiles", "threshold_rows", "write_report"]


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    images: tuple[Path, ...]


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _slug(category: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", category)


def threshold_rows(run: CalibrationRun) -> list[dict[str, str]]:
    """One row per category for the threshold table (also printed by the CLI)."""
    rows = []
    for c in run.categories:
        r = c.result
        rows.append(
            {
                "category": c.category,
                "scale": c.scale,
                "n": str(c.scores.size),
                "positives": str(int(c.labels.sum())),
                "threshold": _fmt(r.threshold if r else None),
                "band": score_band(r.threshold) if r and c.scale == "gme_cosine" else "–",
                "precision": _fmt(r.precision if r else None, 3),
                "recall": _fmt(r.recall if r else None, 3),
                "fpr": _fmt(r.fpr if r else None, 3),
                "previous": _fmt(c.previous.value if c.previous else None),
                "version": str(c.version_id) if c.version_id else "–",
                "bound": r.bound if r else "–",
                "status": "ok" if c.error is None else f"not calibrated: {c.error}",
            }
        )
    return rows


def _histogram(c: CategoryCalibration, path: Path) -> None:
    from matplotlib.figure import Figure  # optional dependency (the `report` extra)

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    bins = np.histogram_bin_edges(c.scores, bins=min(40, max(10, c.scores.size // 5)))
    ax.hist(c.scores[~c.labels], bins=bins, alpha=0.6, label="non-violations", color="tab:blue")
    ax.hist(c.scores[c.labels], bins=bins, alpha=0.6, label="violations", color="tab:red")
    if c.cutoffs:
        others = [t for t in LADDER if t is not RiskTier.MEDIUM]
        for i, tier in enumerate(others):
            label = "warning / high / extreme" if i == 0 else None
            ax.axvline(c.cutoffs[tier], color="black", linestyle=":", linewidth=1, label=label)
        ax.axvline(c.cutoffs[RiskTier.MEDIUM], color="black", label="threshold (medium)")
    if c.previous is not None:
        ax.axvline(c.previous.value, color="grey", linestyle="--", label="previous threshold")
    ax.set_xlabel(f"score ({c.scale})")
    ax.set_ylabel("images")
    ax.set_title(f"{c.category}: scores of violations vs non-violations")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def _pr_curve(c: CategoryCalibration, path: Path) -> bool:
    """Precision–recall curve with the chosen point; False when undefined (one class only)."""
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve

    if c.labels.all() or not c.labels.any():
        return False
    precision, recall, _ = precision_recall_curve(c.labels, c.scores)
    fig = Figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(recall, precision, color="tab:purple", drawstyle="steps-post")
    if c.result is not None and c.result.precision is not None and c.result.recall is not None:
        ax.scatter(
            [c.result.recall],
            [c.result.precision],
            color="black",
            zorder=3,
            label=f"chosen t={c.result.threshold:.4f}",
        )
        ax.legend(loc="lower left")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{c.category}: precision–recall")
    fig.tight_layout()
    fig.savefig(path)
    return True


def _plots(run: CalibrationRun, out_dir: Path) -> dict[str, dict[str, str]]:
    plots: dict[str, dict[str, str]] = {}
    for c in run.categories:
        slug = _slug(c.category)
        plots[c.category] = {"hist": f"hist_{slug}.png"}
        _histogram(c, out_dir / plots[c.category]["hist"])
        if _pr_curve(c, out_dir / f"pr_{slug}.png"):
            plots[c.category]["pr"] = f"pr_{slug}.png"
    return plots


def _context(
    run: CalibrationRun, plots: dict[str, dict[str, str]], now: dt.datetime
) -> dict[str, Any]:
    if run.written:
        outcome = "written as new threshold versions"
    elif run.failed:
        outcome = "NOT written: some categories could not be calibrated"
    else:
        outcome = "not written (dry run)"
    categories = [
        {
            "name": c.category,
            "summary": c.summary,
            "plots": plots[c.category],
            "cutoffs": {t.value: _fmt(v) for t, v in (c.cutoffs or {}).items()},
        }
        for c in run.categories
    ]
    return {
        "run": run,
        "params": ", ".join(f"{k}={v:g}" for k, v in run.params.items()) or "defaults",
        "when": now.isoformat(timespec="seconds"),
        "outcome": outcome,
        "rows": threshold_rows(run),
        "categories": categories,
    }


_COLUMNS = {
    "category": "category",
    "scale": "scale",
    "n": "n",
    "positives": "positives",
    "threshold": "threshold",
    "band": "band",
    "precision": "precision",
    "recall": "recall",
    "fpr": "FPR",
    "previous": "previous",
    "version": "version",
    "status": "status",
}


def write_report(run: CalibrationRun, out_dir: Path, *, now: dt.datetime) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and one histogram + PR plot per category."""
    out_dir.mkdir(parents=True, exist_ok=True)
    context = _context(run, _plots(run, out_dir), now)
    context.update(headers=list(_COLUMNS.values()), keys=list(_COLUMNS))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("moderation", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),  # Markdown is not HTML-escaped
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    markdown = out_dir / "report.md"
    html = out_dir / "report.html"
    markdown.write_text(env.get_template("calibration_report.md.j2").render(**context), "utf-8")
    html.write_text(env.get_template("calibration_report.html.j2").render(**context), "utf-8")
    images = tuple(
        sorted(out_dir / name for p in context["categories"] for name in p["plots"].values())
    )
    return ReportFiles(markdown, html, images)
