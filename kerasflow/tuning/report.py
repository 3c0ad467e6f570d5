"""What a search leaves in its folder: ``results.csv`` (a row per trial), ``results.md`` (a table per
factor, like the paper's Tables 5-7), ``results.png`` (test top-1 against each factor) and
``best.yaml`` (the best trial's recipe, for ``python -m kerasflow.fit``). All are written atomically
from the trials' recorded numbers: reporting never trains.

A factor's table has a row per value: the trial with the other factors at the recipe's values (a
one-at-a-time search has one for every value), or else the best trial with that value, marked.
"""

import csv
import dataclasses
import io
from pathlib import Path

from kerasflow.atomic import atomic_path, write_text
from kerasflow.config.loading import recipe_to_yaml
from kerasflow.tuning.space import describe, show, yaml_text

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
RESULTS_PLOT = "results.png"
BEST_RECIPE = "best.yaml"
BEST_FOLDER = "best"  # where python -m kerasflow.fit best.yaml trains
METRICS = ("top1", "val_top1", "trainable_parameters", "seconds_per_video")
FALLBACK_MARK = "†"


@dataclasses.dataclass(frozen=True)
class TrialResult:
    """One trial as the report shows it; ``metrics`` (``METRICS``) is empty unless it completed;
    ``error``: why a failed trial failed (one line)."""

    trial_id: str
    values: dict
    status: str
    metrics: dict
    error: str = ""

    @property
    def completed(self) -> bool:
        return bool(self.metrics)


def factor_rows(space, factor, results):
    """``[(value, TrialResult, at_base)]`` of ``factor``'s table, in its values' order (a range's: sorted).

    ``at_base`` is False when no completed trial had the other factors at the recipe's values and the
    row is the best one (by the objective) with this value.
    """
    completed = [result for result in results if result.completed]
    others = {key: value for key, value in space.base_values.items() if key != factor.key}
    values = factor.choices if factor.choices is not None else sorted({r.values[factor.key] for r in completed})
    rows = []
    for value in values:
        matching = [result for result in completed if result.values[factor.key] == value]
        at_base = [result for result in matching if all(result.values[key] == base for key, base in others.items())]
        if at_base:
            rows.append((value, at_base[0], True))
        elif matching:
            rows.append((value, max(matching, key=lambda result: result.metrics["val_top1"]), False))
    return rows


def results_csv(space, results) -> str:
    """One row per trial: its id, a column per factor (named by its recipe key; the value as YAML, in
    full), ``METRICS``, status, run folder and the error of a failed trial."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["trial", *(factor.key for factor in space.factors), *METRICS, "status", "run_folder", "error"])
    for result in results:
        numbers = [(int if name == "trainable_parameters" else _rounded)(result.metrics[name]) if result.completed
                   else "" for name in METRICS]
        writer.writerow([result.trial_id, *(yaml_text(result.values[factor.key]) for factor in space.factors), *numbers,
                         result.status, f"trials/{result.trial_id}", result.error])
    return text.getvalue()


def _rounded(value):
    return round(value, 6)


def results_markdown(space, results, best) -> str:
    """The tables, under a paragraph that says what the search ran and which trial is best."""
    stages = ", ".join(space.search.stages or space.recipe.kind.stages)
    completed = sum(result.completed for result in results)
    lines = [f"# Search results: {space.name}", "",
             f"{space.search.mode} search, {len(results)} trials ({completed} completed), each training {stages} "
             f"on {space.recipe.data.dataset}. top-1: the test top-1 of the trial's final model; validation top-1: "
             "the objective (the best checkpoint's); s/video: seconds per test video.", ""]
    lines += [f"Trial {result.trial_id} ({describe(result.values)}) failed: {result.error}" for result in results
              if result.error] + ([""] if any(result.error for result in results) else [])
    if best is not None:
        lines += [f"Best trial: {best.trial_id} ({describe(best.values)}): validation top-1 "
                  f"{100 * best.metrics['val_top1']:.2f} %, test top-1 {100 * best.metrics['top1']:.2f} %; its recipe "
                  f"is {BEST_RECIPE}.", ""]
    for factor in space.factors:
        lines += [f"## {factor.key}", "",
                  f"| {factor.key} | top-1 (%) | validation top-1 (%) | trainable parameters | s/video | trial |",
                  "|---|--:|--:|--:|--:|---|"]
        rows = factor_rows(space, factor, results)
        for value, result, at_base in rows:
            metrics = result.metrics
            lines.append(f"| {show(value)} | {100 * metrics['top1']:.2f} | {100 * metrics['val_top1']:.2f} | "
                         f"{int(metrics['trainable_parameters']):,} | {metrics['seconds_per_video']:.4f} | "
                         f"{result.trial_id}{'' if at_base else ' ' + FALLBACK_MARK} |")
        others = {key: value for key, value in space.base_values.items() if key != factor.key}
        if others:
            lines += ["", f"Other factors at the recipe's values: {describe(others)}."]
        if not all(at_base for _, _, at_base in rows):
            lines += [f"{FALLBACK_MARK} No trial had them all there: the best trial with this value."]
        lines.append("")
    return "\n".join(lines)


def plot_factors(space, results, path):
    """Test top-1 (%) against each factor, a panel per factor: every completed trial (grey) and the
    table's rows (joined). Writes a PNG to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    figure, axes = plt.subplots(1, len(space.factors), figsize=(4.5 * len(space.factors), 3.6), squeeze=False)
    for axis, factor in zip(axes[0], space.factors):
        if factor.choices is not None:
            place = {yaml_text(value): index for index, value in enumerate(factor.choices)}
            axis.set_xticks(range(len(place)), [show(value) for value in factor.choices])
        else:
            place = None
            if factor.bounds.get("sampling") == "log":
                axis.set_xscale("log")
                axis.xaxis.set_minor_formatter(NullFormatter())  # labels on powers of ten only
        points = [(result.values[factor.key], 100 * result.metrics["top1"]) for result in results if result.completed]
        rows = [(value, 100 * result.metrics["top1"]) for value, result, _ in factor_rows(space, factor, results)]
        for series, style in ((points, dict(color="lightgrey", marker="o", linestyle="none", label="every trial")),
                              (rows, dict(color="tab:blue", marker="o", label="table rows"))):
            series = [(value if place is None else place[yaml_text(value)], top1) for value, top1 in series
                      if place is None or yaml_text(value) in place]
            axis.plot([x for x, _ in series], [y for _, y in series], **style)
        axis.set_title(factor.key, fontsize=10)
        axis.set_ylabel("test top-1 (%)")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)


def best_recipe_yaml(space, best) -> str:
    """The best trial's full recipe, training again in the search folder's ``best/``."""
    recipe = space.trial_recipe(best.values, Path(space.folder) / BEST_FOLDER)
    return (f"# The best trial of the search in {space.folder}: trial {best.trial_id} ({describe(best.values)}),\n"
            f"# validation top-1 {best.metrics['val_top1']:.4f}, test top-1 {best.metrics['top1']:.4f}.\n"
            f"# python -m kerasflow.fit best.yaml trains it again in {recipe.runtime.output_dir}.\n"
            + recipe_to_yaml(recipe))


def write_report(space, results, best):
    """Write the report files into the search folder (``best.yaml`` and the plot only once a trial has
    completed); returns the paths written."""
    folder = Path(space.folder)
    written = [folder / RESULTS_CSV, folder / RESULTS_MD]
    write_text(written[0], results_csv(space, results))
    write_text(written[1], results_markdown(space, results, best))
    if best is not None:
        written += [folder / RESULTS_PLOT, folder / BEST_RECIPE]
        plot_factors(space, results, written[2])
        write_text(written[3], best_recipe_yaml(space, best))
    return written
