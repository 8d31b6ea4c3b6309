"""The ``arm-emulated`` part of a report: instructions per inference per emulated core, never as time.

Counts are deterministic, so repeated records of one configuration must agree; the table shows the median.
"""
import statistics
from collections import defaultdict

from android_bench.zoo import DEFAULT_BASELINE, ZOO

COLUMNS = ("model", "precision", "delegate", "params", "macs", "size_bytes", "instructions", "first_inference",
           "dot_product", "int8_ratio", "vs_baseline", "bit_exact", "max_abs_diff")
NOTE = ("Instructions per inference on the real aarch64 LiteRT kernels under qemu-user, counted exactly; "
        "not milliseconds (no caches, no memory stalls, no pipeline), but the same kernels a phone runs, "
        "comparable between models on one core.")


def core_key(record):
    device = record["device"]
    return f"emulated {device['cpu']} ({device['emulator']} {device['emulator_version'].split()[0]})"


def aggregate(records, baseline, name_of):
    """{core: [row, ...]}: one row per (model, precision, delegate), zoo order; ``name_of(record)`` gives
    (model name, precision) as the latency report reads them."""
    groups = defaultdict(list)
    for record in records:
        groups[(core_key(record), *name_of(record), record["delegate"])].append(record)
    tables = defaultdict(list)
    for (core, name, precision, delegate), group in groups.items():
        label = group[0].get("label") or {}
        counts = [r["instructions"] for r in group]
        instructions = int(statistics.median(c["per_inference"] for c in counts))
        tables[core].append({
            "model": name, "precision": precision, "delegate": delegate, "threads": 1,
            "core": group[0]["device"]["cpu"], "params": label.get("params"), "macs": label.get("macs"),
            "size_bytes": group[0]["model"]["size_bytes"], "top1": label.get("top1"),
            "instructions": instructions, "instructions_m": instructions / 1e6,
            "first_inference": int(statistics.median(c["first_inference"] for c in counts)),
            "dot_product": int(statistics.median(c["dot_product_per_inference"] for c in counts)),
            "bit_exact": all(r["host_agreement"]["bit_exact"] for r in group),
            "max_abs_diff": max(r["host_agreement"]["max_abs_diff"] for r in group),
        })
    order = {name: i for i, name in enumerate(ZOO)}
    for rows in tables.values():
        rows.sort(key=lambda r: (order.get(r["model"], len(order)), r["model"], r["precision"]))
        by_key = {(r["model"], r["precision"], r["delegate"]): r for r in rows}
        for row in rows:
            base = by_key.get((baseline, row["precision"], row["delegate"]))
            row["vs_baseline"] = row["instructions"] / base["instructions"] if base else None
            float_row = by_key.get((row["model"], "float32", row["delegate"]))
            row["int8_ratio"] = (row["instructions"] / float_row["instructions"]
                                 if row["precision"] == "int8" and float_row else None)
    return dict(tables)


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def markdown(tables, baseline=DEFAULT_BASELINE):
    lines = []
    for core, rows in tables.items():
        lines += [f"### {core}", "", NOTE, "",
                  "| model | precision | params (M) | MACs (M) | size (MB) | instructions (M) | first inference (M) "
                  f"| dot-product (M) | int8/float32 | vs {baseline} | vs host |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            agreement = "bit-exact" if r["bit_exact"] else f"max diff {r['max_abs_diff']:.2g}"
            lines.append(
                f"| {r['model']} | {r['precision']} | {_fmt(r['params'] and r['params'] / 1e6, '.2f')} "
                f"| {_fmt(r['macs'] and r['macs'] / 1e6, '.1f')} | {r['size_bytes'] / 1e6:.2f} "
                f"| {r['instructions'] / 1e6:.2f} | {r['first_inference'] / 1e6:.2f} | {r['dot_product'] / 1e6:.2f} "
                f"| {_fmt(r['int8_ratio'], '.2f')} | {_fmt(r['vs_baseline'], '.2f')} | {agreement} |")
        lines.append("")
    return "\n".join(lines) + "\n"
