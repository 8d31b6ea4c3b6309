"""``ghostnet bench report``: a markdown table, a CSV and PNG plots from a results file, one table per device.

Rounds of the same configuration (model, precision, threads, delegate) are pooled: latency is the median
of the rounds' medians and p95 the median of their p95s, so one disturbed round cannot move the figure.
"""
import csv
import io
import os
import re
import statistics
from collections import defaultdict

from android_bench import results
from android_bench.arm import report as arm_report
from android_bench.zoo import DEFAULT_BASELINE, ZOO
from ghostnet_tf.files import write_atomic

COLUMNS = ("model", "precision", "threads", "delegate", "params", "macs", "size_bytes", "median_ms", "p95_ms",
           "rounds", "int8_speedup", "vs_baseline")


def device_key(record):
    """A readable name of the machine a record was measured on."""
    device = record["device"]
    if record["mode"] == "adb":
        return " ".join(str(device.get(k)) for k in ("manufacturer", "model", "soc") if device.get(k)) or "phone"
    return f"{device.get('hostname', 'host')} ({device.get('cpu_model') or device.get('machine', 'cpu')})"


def _label(record):
    label = record.get("label") or {}
    name = label.get("name") or os.path.splitext(os.path.basename(record["model"]["path"]))[0]
    return name, label.get("precision") or record["model"].get("input_dtype", "?")


def aggregate(records, baseline=DEFAULT_BASELINE):
    """{device: [row, ...]} with the COLUMNS of the table, in zoo order then name, precision, threads."""
    groups = defaultdict(list)
    for record in records:
        name, precision = _label(record)
        groups[(device_key(record), name, precision, record["threads"], record["delegate"])].append(record)
    tables = defaultdict(list)
    for (device, name, precision, threads, delegate), group in groups.items():
        stats = [r["stats"] for r in group]
        label = group[0].get("label") or {}
        tables[device].append({
            "model": name, "precision": precision, "threads": threads, "delegate": delegate,
            "params": label.get("params"), "macs": label.get("macs"),
            "size_bytes": group[0]["model"]["size_bytes"],
            "median_ms": statistics.median(s["median_us"] if s.get("median_us") is not None else s["mean_us"]
                                           for s in stats) / 1000.0,
            "p95_ms": _median_or_none(s.get("p95_us") for s in stats),
            "rounds": len(group), "top1": label.get("top1"), "weights": label.get("weights"),
        })
    order = {name: i for i, name in enumerate(ZOO)}
    for rows in tables.values():
        rows.sort(key=lambda r: (order.get(r["model"], len(order)), r["model"], r["precision"], r["threads"]))
        _add_ratios(rows, baseline)
    return dict(tables)


def _median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) / 1000.0 if values else None


def _add_ratios(rows, baseline):
    by_key = {(r["model"], r["precision"], r["threads"], r["delegate"]): r for r in rows}
    for row in rows:
        key = (row["precision"], row["threads"], row["delegate"])
        base = by_key.get((baseline, *key))
        row["vs_baseline"] = row["median_ms"] / base["median_ms"] if base else None
        float_row = by_key.get((row["model"], "float32", row["threads"], row["delegate"]))
        row["int8_speedup"] = (float_row["median_ms"] / row["median_ms"]
                               if row["precision"] == "int8" and float_row else None)


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def markdown(tables, baseline=DEFAULT_BASELINE):
    out = io.StringIO()
    for device, rows in tables.items():
        out.write(f"### {device}\n\n")
        out.write("| model | precision | threads | params (M) | MACs (M) | size (MB) | median (ms) | p95 (ms) "
                  f"| int8 speed-up | vs {baseline} |\n|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            out.write(f"| {r['model']} | {r['precision']} | {r['threads']} | {_fmt(r['params'] and r['params'] / 1e6, '.2f')} "
                      f"| {_fmt(r['macs'] and r['macs'] / 1e6, '.1f')} | {r['size_bytes'] / 1e6:.2f} "
                      f"| {r['median_ms']:.2f} | {_fmt(r['p95_ms'], '.2f')} | {_fmt(r['int8_speedup'], '.2f')} "
                      f"| {_fmt(r['vs_baseline'], '.2f')} |\n")
        out.write("\n")
    return out.getvalue()


def csv_text(tables, columns=COLUMNS):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=("device", *columns, "top1"), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for device, rows in tables.items():
        for row in rows:
            writer.writerow({"device": device, **row})
    return out.getvalue()


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_plot(title, rows, value, ylabel):
    """Grouped bars: ``value`` per model, one bar per precision (threads 1 when present)."""
    plt = _pyplot()
    threads = min(r["threads"] for r in rows)
    rows = [r for r in rows if r["threads"] == threads]
    models = list(dict.fromkeys(r["model"] for r in rows))
    precisions = sorted({r["precision"] for r in rows})
    figure, axes = plt.subplots(figsize=(max(6, 1.2 * len(models) + 2), 4))
    width = 0.8 / len(precisions)
    for i, precision in enumerate(precisions):
        values = {r["model"]: r[value] for r in rows if r["precision"] == precision}
        xs = [m + (i - (len(precisions) - 1) / 2) * width for m in range(len(models))]
        axes.bar(xs, [values.get(m, 0) for m in models], width, label=precision)
    axes.set_xticks(range(len(models)), [_label_of(m) for m in models], rotation=30, ha="right")
    axes.set_ylabel(ylabel)
    axes.set_title(f"{title}, {threads} thread{'s' if threads > 1 else ''}")
    axes.legend()
    return _png(figure)


# Label positions tried around a point (offset points), nearest first: right, above, below, left, diagonals.
LABEL_OFFSETS = ((5, -3), (5, 7), (5, -13), (-5, -3), (-5, 7), (-5, -13), (5, 17), (5, -23), (-5, 17), (-5, -23),
                 (5, 27), (5, -33), (-5, 27), (-5, -33))


def place_labels(axes, points):
    """Annotate each (x, y, text) at the first offset where its box overlaps no other label and no marker,
    so every label stays readable when models sit close together."""
    figure = axes.figure
    renderer = figure.canvas.get_renderer()
    markers = [axes.transData.transform((x, y)) for x, y, _ in points]
    placed, annotations = [], []
    for x, y, text in points:
        for dx, dy in LABEL_OFFSETS:
            annotation = axes.annotate(text, (x, y), fontsize=7, textcoords="offset points", xytext=(dx, dy),
                                       ha="left" if dx > 0 else "right", va="center")
            box = annotation.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed) and \
                    not any(box.contains(*marker) for marker in markers):
                break
            annotation.remove()
        else:  # crowded beyond every offset: keep the first one
            annotation = axes.annotate(text, (x, y), fontsize=7, textcoords="offset points",
                                       xytext=LABEL_OFFSETS[0], va="center")
            box = annotation.get_window_extent(renderer)
        placed.append(box)
        annotations.append(annotation)
    return annotations


def accuracy_plot(device, rows, value="median_ms", xlabel="measured median latency (ms)"):
    """The accuracy-vs-latency (or vs ``value``) figure as PNG bytes."""
    return _png(accuracy_figure(device, rows, value, xlabel))


def accuracy_figure(device, rows, value="median_ms", xlabel="measured median latency (ms)"):
    """Published ImageNet top-1 against ``value`` (measured latency by default), one line per family (as the
    GhostNet paper's Fig. 7)."""
    import matplotlib

    plt = _pyplot()
    threads = min(r["threads"] for r in rows)
    figure, axes = plt.subplots(figsize=(7, 5))
    families = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["threads"] == threads and r["top1"] is not None:
            entry = ZOO.get(r["model"])
            families[entry.family if entry else r["model"]][r["precision"]].append(r)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    random_weights = any(r.get("weights") == "random" for by in families.values() for m in by.values() for r in m)
    points = []
    for index, (family, by_precision) in enumerate(families.items()):
        color = colors[index % len(colors)]
        for precision, members in by_precision.items():
            members.sort(key=lambda r: r[value])
            int8 = precision == "int8"
            hollow = all(r.get("weights") == "random" for r in members)
            axes.plot([r[value] for r in members], [r["top1"] for r in members], color=color,
                      marker="s" if int8 else "o", linestyle="-" if int8 else "--",
                      markerfacecolor="none" if hollow else color,
                      label=f"{family} {precision}" + (" (random weights)" if hollow else ""))
            points += [(r[value], r["top1"], f"{_label_of(r['model'])} {precision}") for r in members]
    axes.set_xlabel(f"{xlabel}, {threads} thread{'s' if threads > 1 else ''}")
    axes.set_ylabel("published ImageNet top-1 (%)")
    title = f"Accuracy vs {xlabel.split(' (')[0].replace('measured median ', '')} on {device}"
    if random_weights:  # the y value is the architecture's, not what these files would score
        title += "\nhollow: random weights, placed at the architecture's published top-1"
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.margins(x=0.25, y=0.15)  # room for labels beside the outermost points
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)  # off the points
    figure.canvas.draw()  # fixes the limits, so label boxes are measured where they will be drawn
    place_labels(axes, points)
    return figure


def _label_of(name):
    return ZOO[name].label if name in ZOO else name


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60]


def provenance(records, command=None):
    """The header of report.md: when, by which command, on which machines, with which runtimes, how many runs."""
    import datetime

    from ghostnet_tf.cli import package_version

    dates = sorted(r["date"] for r in records)
    runtimes = sorted({f"{r['runtime']['name']} {r['runtime'].get('version') or ''}".strip() for r in records})
    devices = list(dict.fromkeys(arm_report.core_key(r) if r["mode"] == "arm-emulated" else device_key(r)
                                 for r in records))
    lines = [f"- written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by ghostnet-tf "
             f"{package_version()}" + (f": `{command}`" if command else ""),
             f"- measured {dates[0][:16].replace('T', ' ')} to {dates[-1][:16].replace('T', ' ')} UTC",
             f"- machines: {'; '.join(devices)}",
             f"- runtimes: {', '.join(runtimes)}"]
    converters = sorted({(r.get("label") or {}).get("converter") for r in records} - {None})
    if converters:
        lines.append(f"- converted with {', '.join(converters)}")
    timed = [r for r in records if r.get("stats")]
    if timed:
        counts = sorted({r["stats"]["count"] for r in timed})
        warmups = sorted({(r.get("warmup") or {}).get("count", 0) for r in timed})
        groups = defaultdict(int)
        for r in timed:
            groups[(device_key(r), *_label(r), r["threads"], r["delegate"])] += 1
        rounds = sorted(set(groups.values()))
        lines.append(f"- latency: {'/'.join(map(str, counts))} timed runs after {'/'.join(map(str, warmups))} "
                     f"warm-up per round, {'/'.join(map(str, rounds))} round(s) per configuration")
    weights = sorted({(r.get("label") or {}).get("weights") for r in records} - {None})
    if "random" in weights:
        lines.append("- weights: random (latency and instructions do not depend on them; the accuracy plots show "
                     "each architecture's published top-1, not these files)")
    return "\n".join(lines) + "\n\n"


def write_report(results_path, out_dir, baseline=None, command=None):
    """Write report.md, report.csv and per-device PNGs into ``out_dir`` (and for arm-emulated records
    instructions.csv and instruction plots per core); return the markdown.
    ``baseline``: the model of the ratio column, which must be in the results (None: DEFAULT_BASELINE if
    measured). ``command``: the command line that produced the results, for the header."""
    records = results.read_records(results_path)
    if not records:
        raise ValueError(f"{results_path}: no benchmark records in the file")
    names = sorted({_label(r)[0] for r in records})
    if baseline is not None and baseline not in names:
        raise ValueError(f"--baseline: {baseline!r} is not among the measured models ({', '.join(names)})")
    baseline = baseline or DEFAULT_BASELINE
    timed = [r for r in records if r["mode"] != "arm-emulated"]
    counted = [r for r in records if r["mode"] == "arm-emulated"]
    os.makedirs(out_dir, exist_ok=True)
    text = ""
    header = "# Benchmark report\n\n" + provenance(records, command)
    if timed:
        tables = aggregate(timed, baseline)
        text += markdown(tables, baseline)
        write_atomic(os.path.join(out_dir, "report.csv"), csv_text(tables).encode("utf-8"))
        for device, rows in tables.items():
            suffix = "" if len(tables) == 1 else f"_{_slug(device)}"
            write_atomic(os.path.join(out_dir, f"latency{suffix}.png"),
                         bar_plot(device, rows, "median_ms", "median latency (ms)"))
            if any(r["top1"] is not None for r in rows):  # models outside the zoo have no published top-1
                write_atomic(os.path.join(out_dir, f"accuracy_latency{suffix}.png"), accuracy_plot(device, rows))
    if counted:  # instruction counts on emulated ARM cores: their own tables and plots, never as time
        tables = arm_report.aggregate(counted, baseline, _label)
        text += arm_report.markdown(tables, baseline)
        write_atomic(os.path.join(out_dir, "instructions.csv"),
                     csv_text(tables, arm_report.COLUMNS).encode("utf-8"))
        for core, rows in tables.items():
            suffix = f"_{_slug(rows[0]['core'])}"
            write_atomic(os.path.join(out_dir, f"instructions{suffix}.png"),
                         bar_plot(core, rows, "instructions_m", "instructions per inference (M), not time"))
            if any(r["top1"] is not None for r in rows):
                write_atomic(os.path.join(out_dir, f"accuracy_instructions{suffix}.png"),
                             accuracy_plot(core, rows, "instructions_m", "instructions per inference (M)"))
    write_atomic(os.path.join(out_dir, "report.md"), (header + text).encode("utf-8"))
    return text
