"""Plots of verdict records as PNG bytes (matplotlib, headless Agg backend): speedup intervals per
variant beside the size and MAC reductions, and the structured-vs-unstructured sweep of `compare`.

Both put "faster" next to "smaller", so the gap between the two is visible at a glance.
"""

from __future__ import annotations

import io
from typing import Any

from harness.reports.table import baseline_cell
from targets.files_out import OWN_MARK

ACCEPT_COLOR = "#2e7d32"
REJECT_COLOR = "#c62828"
KIND_COLORS = {
    "structured": "#1565c0",
    "unstructured": "#ef6c00",
    "semi-structured": "#6a1b9a",
    "candidate": "#2e7d32",  # a file compressed elsewhere (compare --candidate), at its share of zero weights
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # the mark lets a later run replace the plot, and nothing else (targets.files_out)
    figure.savefig(
        buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": f"speedproof ({OWN_MARK})"}
    )
    _pyplot().close(figure)
    return buffer.getvalue()


def _reduction(cell: dict[str, Any], reference: dict[str, Any] | None, key: str) -> float | None:
    facts, base = cell.get("artifact") or {}, (reference or {}).get("artifact") or {}
    if not facts.get(key) or not base.get(key):
        return None
    return float(base[key]) / float(facts[key])


def speedup_figure(record: dict[str, Any]) -> bytes | None:
    """Speedup [CI] of every verdict cell against the threshold, beside its size and MAC reductions;
    None when no cell has a measured speedup."""
    cells = [cell for cell in record["cells"] if cell.get("speedup")]
    if not cells:
        return None
    plt = _pyplot()
    policy = record.get("policy") or {}
    labels = [" ".join(p for p in (cell.get("target"), cell["model"], cell["variant"]) if p) for cell in cells]
    height = 1.2 + 0.45 * len(cells)
    figure, (speed_axis, size_axis) = plt.subplots(
        1, 2, figsize=(11, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    labelled: set[str] = set()
    for row, cell in enumerate(cells):
        speedup = cell["speedup"]
        accepted = (cell.get("verdict") or {}).get("decision") == "ACCEPT"
        color = ACCEPT_COLOR if accepted else REJECT_COLOR
        speed_axis.errorbar(
            speedup["ratio"],
            row,
            xerr=[[speedup["ratio"] - speedup["ci_low"]], [speedup["ci_high"] - speedup["ratio"]]],
            fmt="o",
            color=color,
            capsize=4,
        )
        reference = baseline_cell(record, cell)
        bars = ((-0.15, "zipped_bytes", "zipped size", "#90a4ae"), (0.15, "macs", "MACs", "#455a64"))
        for offset, key, name, shade in bars:
            value = _reduction(cell, reference, key)
            if value is not None:
                label = None if name in labelled else name  # one legend entry per kind, from its first bar
                labelled.add(name)
                size_axis.barh(row + offset, value, height=0.3, color=shade, label=label)
    speed_axis.axvline(1.0, color="#777777", linestyle=":", linewidth=1)
    if policy.get("min_speedup"):
        speed_axis.axvline(policy["min_speedup"], color=REJECT_COLOR, linestyle="--", linewidth=1, label="threshold")
        speed_axis.legend(loc="lower right", fontsize=8)
    speed_axis.set_yticks(range(len(cells)), labels)
    speed_axis.invert_yaxis()
    speed_axis.set_xlabel(f"speedup ({policy.get('metric', 'p50')}, batch {policy.get('batch_size', 1)}) with interval")
    speed_axis.set_title("measured: faster?  (green ACCEPT, red REJECT)", fontsize=10)
    size_axis.axvline(1.0, color="#777777", linestyle=":", linewidth=1)
    size_axis.set_xlabel("reduction vs baseline (x)")
    size_axis.set_title("on paper: smaller?", fontsize=10)
    if labelled:
        size_axis.legend(loc="lower right", fontsize=8)
    return _png(figure)


def compare_figure(record: dict[str, Any]) -> bytes:
    """Speedup with its interval against sparsity per pruning kind (left), and the size and MAC
    reductions of the same variants (right)."""
    plt = _pyplot()
    points = record.get("compare", {}).get("points", [])
    policy = record.get("policy") or {}
    figure, (speed_axis, size_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    backends = list(dict.fromkeys(p.get("backend") for p in points))
    for (kind, color), backend in ((entry, backend) for entry in KIND_COLORS.items() for backend in backends):
        kind_points = sorted(
            (p for p in points if p["kind"] == kind and p.get("speedup") and p.get("backend") == backend),
            key=lambda p: p["sparsity"],
        )
        if not kind_points:
            continue
        label = f"{kind} ({backend})" if len(backends) > 1 else kind
        xs = [p["sparsity"] for p in kind_points]
        ratios = [p["speedup"]["ratio"] for p in kind_points]
        errors = [
            [p["speedup"]["ratio"] - p["speedup"]["ci_low"] for p in kind_points],
            [p["speedup"]["ci_high"] - p["speedup"]["ratio"] for p in kind_points],
        ]
        first = backend == backends[0]  # a second runtime: hollow squares, dashed, a little to the right
        style = ("o-" if first else "s--") if len(xs) > 1 else ("D" if first else "s")
        shift = 0.008 * backends.index(backend)
        speed_axis.errorbar(
            [x + shift for x in xs],
            ratios,
            yerr=errors,
            fmt=style,
            color=color,
            capsize=4,
            label=label,
            markerfacecolor=color if first else "white",
        )
        for key, marker, name in (("zipped_reduction", "s", "zipped size"), ("mac_reduction", "^", "MACs")):
            values = [p.get(key) for p in kind_points]
            if any(v is not None for v in values) and backend == backends[0]:  # the same files on every backend
                size_axis.plot(
                    xs,
                    values,
                    marker=marker,
                    linestyle="-" if len(xs) > 1 else "",
                    color=color,
                    label=f"{kind}: {name}",
                    alpha=0.9 if key == "mac_reduction" else 0.55,
                )
    levels = sorted({p["sparsity"] for p in points})
    if len(levels) == 1:  # one level: room around it for the runtimes' points side by side
        speed_axis.set_xlim(levels[0] - 0.05, levels[0] + 0.05)
    speed_axis.axhline(1.0, color="#777777", linestyle=":", linewidth=1)
    if policy.get("min_speedup"):
        speed_axis.axhline(policy["min_speedup"], color=REJECT_COLOR, linestyle="--", linewidth=1, label="threshold")
    speed_axis.set_xlabel("sparsity (share of weights or channels removed)")
    speed_axis.set_ylabel(f"measured speedup ({policy.get('metric', 'p50')}, batch {policy.get('batch_size', 1)})")
    speed_axis.set_title(f"{record.get('compare', {}).get('model', '')}: faster?", fontsize=10)
    speed_axis.legend(fontsize=8)
    size_axis.axhline(1.0, color="#777777", linestyle=":", linewidth=1)
    size_axis.set_xlabel("sparsity")
    size_axis.set_ylabel("reduction vs baseline (x)")
    size_axis.set_title("smaller? (squares: zipped size, triangles: MACs)", fontsize=10)
    size_axis.legend(fontsize=7)
    return _png(figure)


def batch_curve_figure(record: dict[str, Any]) -> bytes | None:
    """Speedup [CI] against batch size for every cell with a `batch_curve` (verify --batch-sizes),
    with the threshold and 1.00 drawn; None when no cell has one."""
    cells = [cell for cell in record["cells"] if cell.get("batch_curve")]
    if not cells:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for cell in cells:
        points = [point for point in cell["batch_curve"] if point.get("speedup")]
        batches = [point["batch_size"] for point in points]
        ratios = [point["speedup"]["ratio"] for point in points]
        below = [ratio - point["speedup"]["ci_low"] for ratio, point in zip(ratios, points, strict=True)]
        above = [point["speedup"]["ci_high"] - ratio for ratio, point in zip(ratios, points, strict=True)]
        axis.errorbar(
            batches, ratios, yerr=[below, above], marker="o", capsize=4, label=f"{cell['model']} {cell['variant']}"
        )
    min_speedup = (record.get("policy") or {}).get("min_speedup")
    if min_speedup:
        axis.axhline(min_speedup, color=ACCEPT_COLOR, linestyle="--", linewidth=1, label=f"min_speedup {min_speedup:g}")
    axis.axhline(1.0, color="#777", linewidth=1)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("batch size")
    axis.set_ylabel("speedup over the baseline [interval]")
    axis.legend(fontsize=8)
    return _png(figure)


def pareto_points(record: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    """(label, latency relative to the baseline, top-1 accuracy, on the Pareto front) of every
    verify cell with labelled-data accuracy; the baseline sits at latency 1.0."""
    points = []
    for cell in record["cells"]:
        accuracy = cell.get("accuracy")
        if accuracy is None:
            continue
        if cell.get("reference"):
            points.append((f"{cell['model']} baseline", 1.0, float(accuracy)))
        elif (cell.get("speedup") or {}).get("ratio"):
            points.append((f"{cell['model']} {cell['variant']}", 1.0 / cell["speedup"]["ratio"], float(accuracy)))
    return [
        (
            label,
            latency,
            accuracy,
            not any(
                o_lat <= latency and o_acc >= accuracy and (o_lat, o_acc) != (latency, accuracy)
                for _, o_lat, o_acc in points
            ),
        )
        for label, latency, accuracy in points
    ]


def pareto_figure(record: dict[str, Any]) -> bytes | None:
    """Accuracy against latency (relative to the baseline) with the Pareto front; None without
    labelled data."""
    points = pareto_points(record)
    if len(points) < 2:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for label, latency, accuracy, on_front in points:
        axis.scatter(latency, accuracy * 100, color=ACCEPT_COLOR if on_front else "#999")
        axis.annotate(label, (latency, accuracy * 100), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front = sorted((latency, accuracy * 100) for _, latency, accuracy, is_front in points if is_front)
    axis.plot([p[0] for p in front], [p[1] for p in front], color=ACCEPT_COLOR, linewidth=1, label="Pareto front")
    axis.set_xlabel("latency relative to the baseline (1 / speedup)")
    axis.set_ylabel("top-1 accuracy %")
    axis.legend(fontsize=8)
    return _png(figure)


def search_figure(record: dict[str, Any]) -> bytes | None:
    """A search's timed trials: speedup (interval) against quality, the front joined, accepted points
    green; None when nothing was timed."""
    from harness.search.front import SearchTrial

    search = record.get("search") or {}
    trials = [SearchTrial.from_dict(item) for item in search.get("trials", [])]
    timed = [t for t in trials if t.state == "timed" and t.repeat_of is None and t.speedup() is not None]
    if not timed:
        return None
    front = set(search.get("front", []))
    # a decoder's quality is its perplexity (the score is its negative): drawn as perplexity, lower to the right
    perplexity = any((trial.quality or {}).get("metric") == "perplexity" for trial in timed)
    sign = -1.0 if perplexity else 1.0
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for trial in timed:
        speedup = trial.speedup() or {}
        quality = sign * trial.quality_score if trial.quality_score is not None else 0.0
        color = ACCEPT_COLOR if trial.accepted() else REJECT_COLOR
        axis.errorbar(
            quality,
            speedup["ratio"],
            yerr=[[speedup["ratio"] - speedup["ci_low"]], [speedup["ci_high"] - speedup["ratio"]]],
            fmt="o",
            color=color,
            alpha=1.0 if trial.number in front else 0.45,
            capsize=3,
        )
        if trial.number in front:
            axis.annotate(
                trial.recipe, (quality, speedup["ratio"]), fontsize=7, xytext=(4, 4), textcoords="offset points"
            )
    edge = sorted(
        ((sign * (t.quality_score or 0.0), t.speedup_low() or 0.0) for t in timed if t.number in front),
        key=lambda p: p[0],
    )
    axis.plot(
        [p[0] for p in edge],
        [p[1] for p in edge],
        color="#555",
        linewidth=1,
        linestyle="--",
        label="Pareto front (interval lower ends)",
    )
    baseline = search.get("baseline_quality_score")
    if baseline is not None:
        limit = (
            -baseline * (1 + search.get("max_perplexity_increase", 0.0))
            if perplexity
            else baseline - search.get("max_accuracy_drop", 0.0)
        )
        axis.axvline(sign * baseline, color="#999", linewidth=0.8, linestyle=":", label="baseline quality")
        axis.axvline(limit, color="#c62828", linewidth=0.8, linestyle=":", label="quality limit")
    if perplexity:
        axis.invert_xaxis()
    min_speedup = (record.get("policy") or {}).get("min_speedup")
    if min_speedup:
        axis.axhline(min_speedup, color="#2e7d32", linewidth=0.8, linestyle=":", label="min_speedup")
    axis.set_xlabel(
        "perplexity on text (lower is better)" if perplexity else "quality (top-1 accuracy, task score or fidelity)"
    )
    axis.set_ylabel("speedup over the baseline [interval]")
    axis.set_title(f"search of {search.get('model', '')}: green accepted, red rejected", fontsize=10)
    axis.legend(fontsize=7)
    return _png(figure)


def sensitivity_figure(record: dict[str, Any]) -> bytes:
    """Bars of the accuracy drop per layer group pruned alone (most sensitive on top), and beside
    them the measured speedup of each, when `--speed` measured it."""
    section = record["sensitivity"]
    layers = list(reversed(section["layers"]))  # barh draws bottom-up: the most sensitive on top
    names = [layer["layer"] for layer in layers]
    speed = section.get("speed")
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2 if speed else 1, figsize=(10 if speed else 7, 0.35 * len(layers) + 1.5))
    drop_axis = axes[0] if speed else axes
    drop_axis.barh(names, [layer["drop"] * 100 for layer in layers], color=REJECT_COLOR)
    drop_axis.set_xlabel("top-1 accuracy drop, pts")
    drop_axis.set_title(f"{section['model']}: each group alone at {section['recipe']}", fontsize=10)
    drop_axis.tick_params(axis="y", labelsize=7)
    if speed:
        speed_axis = axes[1]
        for row, layer in enumerate(layers):
            speedup = layer.get("speedup") or {}
            if speedup.get("ratio") is None:
                continue
            speed_axis.errorbar(
                speedup["ratio"],
                row,
                xerr=[[speedup["ratio"] - speedup["ci_low"]], [speedup["ci_high"] - speedup["ratio"]]],
                fmt="o",
                color=ACCEPT_COLOR if layer.get("decision") == "ACCEPT" else "#555",
                capsize=3,
            )
        speed_axis.axvline(1.0, color="#999", linewidth=0.8, linestyle=":")
        speed_axis.set_yticks(range(len(layers)), labels=[""] * len(layers))
        speed_axis.set_xlabel("speedup over the baseline [interval]")
    figure.tight_layout()
    return _png(figure)
