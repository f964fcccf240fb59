"""Markdown table of ``iic_sweep.py`` results files: one row per configuration.

Example::

    python benchmarks/sweep_table.py benchmarks/results/iic_perturbations_digits_cpu.json

Prints, per configuration, the seeds, the median [min, max] ACC of the
lowest-loss sub-head at the end, the mean sub-head ACC at the last
checkpoint, the fit time and the throughput of the perturbation alone; and,
for traces that record it, every seed's lowest full-data sub-head loss with
that sub-head's ACC (``loss/ACC`` by seed), which shows whether the loss
ranks the runs. ``--trace`` adds that pair for every checkpoint.
"""

import argparse
import json

import numpy as np


def spread(values, digits=3):
    values = np.asarray(values, dtype=float)
    return f"{np.median(values):.{digits}f} [{values.min():.{digits}f}, {values.max():.{digits}f}]"


def _ranking(runs):
    cells = []
    for r in runs:
        last = r["trace"][-1] if r["trace"] else {}
        if "head_losses" in last:
            best = int(np.argmin(last["head_losses"]))
            cells.append(f"{r['seed']}: {last['head_losses'][best]:.3f}/{last['head_accs'][best]:.3f}")
    return ", ".join(cells) or "-"


def table(results):
    rows = [
        "| configuration | seeds | ACC (lowest-loss sub-head) | mean sub-head ACC | fit time (s) | perturbation (img/s) "
        "| loss/ACC by seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["name"] for r in results):
        runs = [r for r in results if r["name"] == name]
        mean = [r["trace"][-1]["mean"] for r in runs if r["trace"]]
        rows.append(
            f"| {name} | {len(runs)} | {spread([r['acc'] for r in runs])} | "
            f"{spread(mean) if mean else '-'} | {spread([r['time'] for r in runs], 0)} | "
            f"{np.median([r['perturbed_images_per_s'] for r in runs]):,.0f} | {_ranking(runs)} |"
        )
    return "\n".join(rows)


def trace_table(results):
    """Per run and checkpoint: the lowest full-data sub-head loss and its sub-head's ACC."""
    epochs = sorted({t["epoch"] for r in results for t in r["trace"]})
    rows = ["| configuration | seed | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
            "|---|---|" + "---|" * len(epochs)]
    for r in results:
        cells = {}
        for t in r["trace"]:
            if "head_losses" in t:
                best = int(np.argmin(t["head_losses"]))
                cells[t["epoch"]] = f"{t['head_losses'][best]:.3f} / {t['head_accs'][best]:.3f}"
        rows.append(f"| {r['name']} | {r['seed']} | " + " | ".join(cells.get(e, "-") for e in epochs) + " |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--trace", action="store_true", help="also the loss / ACC of every checkpoint")
    args = parser.parse_args()
    results = []
    for path in args.files:  # several files make one table
        with open(path) as f:
            results += json.load(f)["results"]
    print(table(results))
    if args.trace:
        print()
        print(trace_table(results))


if __name__ == "__main__":
    main()
