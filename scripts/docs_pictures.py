#!/usr/bin/env python3
"""The documentation site's pictures, from a real run's record (never drawn by hand): the verdict table as
the terminal prints it, the HTML report's speedup forest plot, and its accuracy/latency Pareto front.

    speedproof demo --out results/demo                  # or any verify record with labelled data
    python scripts/docs_pictures.py results/demo/*-verify-digits-cnn-*.json [--out docs/images]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tabulate import tabulate

from harness.reports.plots import _pyplot, pareto_figure, speedup_figure
from harness.reports.table import record_tables


def table_figure(record: dict) -> bytes:
    """The verdict table (the columns a reader looks at first) rendered in a monospaced font."""
    headers, rows, _ = record_tables(record)
    keep = [
        headers.index(name)
        for name in ("variant", "zipped MB", "MACs", "speedup [CI]", "MDE", "quality", "decision", "next", "reasons")
    ]
    text = tabulate(
        [[row[index] for index in keep] for row in rows],
        headers=[headers[index] for index in keep],
        tablefmt="simple",
        disable_numparse=True,
        stralign="right",
    )
    plt = _pyplot()
    lines = text.splitlines()
    width = max(len(line) for line in lines)
    figure = plt.figure(figsize=(width * 0.075, len(lines) * 0.22 + 0.3))
    figure.text(0.01, 0.5, text, family="monospace", fontsize=9, va="center")
    from io import BytesIO

    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=130, bbox_inches="tight", metadata={"Software": "speedproof"})
    plt.close(figure)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("record", type=Path, help="a verify record (the demo's digits-cnn one has every picture)")
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder for the PNG files")
    args = parser.parse_args()
    record = json.loads(args.record.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    pictures = {
        "verdict-table.png": table_figure(record),
        "speedup-forest.png": speedup_figure(record),
        "pareto-front.png": pareto_figure(record),
    }
    for name, png in pictures.items():
        if png is None:
            raise SystemExit(f"{args.record}: the record has nothing to draw for {name} (no speedups or no accuracy)")
        (args.out / name).write_bytes(png)
        print(f"wrote {args.out / name} ({len(png) // 1024} KiB) from {args.record}")


if __name__ == "__main__":
    main()
