"""``ghostnet bench report``: a markdown table, a CSV and PNG plots from a results file, one table per device.

One core makes every table: ``aggregate`` pools the records of each configuration (model, precision,
threads, delegate) into a row and ``markdown`` renders the rows, both parameterised by the ``Metric``: latency
(the median of the rounds' medians, p95 the median of their p95s, so one disturbed round cannot move the
figure) or instructions per inference on an emulated ARM core (deterministic: the median of agreeing
counts), never shown as time. What the records do not say about the models (row order, display names,
families, the default baseline) comes from the caller's ``Catalog``.
"""
import csv
import io
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from android_bench import results
from ghostnet_tf.files import write_atomic


@dataclass(frozen=True)
class Catalog:
    """What the caller knows of the models beyond the records (its zoo): the row order, each model's display
    label and family, and the default model of the ratio column."""
    order: tuple = ()
    labels: Mapping = field(default_factory=dict)
    families: Mapping = field(default_factory=dict)
    baseline: str | None = None

    @classmethod
    def of(cls, models, baseline=None):
        """From objects with ``name``, ``label`` and ``family`` (``zoo.ZOO.values()``), in their order."""
        models = list(models)
        return cls(tuple(m.name for m in models), {m.name: m.label for m in models},
                   {m.name: m.family for m in models}, baseline)

    def label(self, name):
        return self.labels.get(name, name)

    def family(self, name):
        return self.families.get(name, name)


@dataclass(frozen=True)
class Column:
    """A markdown column: its header (``{baseline}`` is filled in) and the cell of a row."""
    header: str
    cell: Callable


@dataclass(frozen=True)
class Metric:
    """A figure the tables aggregate, with everything the one core needs to know about it."""
    modes: tuple  # the record modes that carry it
    table: Callable  # record -> the table it belongs in (a machine, or an emulated core)
    pool: Callable  # the records of one configuration -> the row's own figures
    value: str  # the figure the ratio columns compare
    int8_column: str  # int8 against float32 of the same model ...
    int8_speedup: bool  # ... as float32 / int8 (a speed-up) or as int8 / float32
    columns: tuple  # of Column, for report.md
    csv_file: str
    csv_columns: tuple
    plot_value: str  # the figure plotted, and where
    plot_stem: str
    plot_label: str
    accuracy_stem: str
    accuracy_label: str
    suffix: Callable  # (table, rows, number of tables) -> the plots' file name suffix
    note: str = ""  # under each table's heading


def device_key(record):
    """A readable name of the machine a record was measured on."""
    device = record["device"]
    if record["mode"] == "adb":
        return " ".join(str(device.get(k)) for k in ("manufacturer", "model", "soc") if device.get(k)) or "phone"
    return f"{device.get('hostname', 'host')} ({device.get('cpu_model') or device.get('machine', 'cpu')})"


def core_key(record):
    """The table of an arm-emulated record: its core and emulator."""
    device = record["device"]
    return f"emulated {device['cpu']} ({device['emulator']} {device['emulator_version'].split()[0]})"


def _label(record):
    label = record.get("label") or {}
    name = label.get("name") or os.path.splitext(os.path.basename(record["model"]["path"]))[0]
    return name, label.get("precision") or record["model"].get("input_dtype", "?")


def _median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) / 1000.0 if values else None


def _latency(group):
    stats = [r["stats"] for r in group]
    return {"median_ms": statistics.median(s["median_us"] if s.get("median_us") is not None else s["mean_us"]
                                           for s in stats) / 1000.0,
            "p95_ms": _median_or_none(s.get("p95_us") for s in stats), "rounds": len(group)}


def _instructions(group):
    counts = [r["instructions"] for r in group]
    instructions = int(statistics.median(c["per_inference"] for c in counts))
    return {"core": group[0]["device"]["cpu"], "instructions": instructions, "instructions_m": instructions / 1e6,
            "first_inference": int(statistics.median(c["first_inference"] for c in counts)),
            "dot_product": int(statistics.median(c["dot_product_per_inference"] for c in counts)),
            "bit_exact": all(r["host_agreement"]["bit_exact"] for r in group),
            "max_abs_diff": max(r["host_agreement"]["max_abs_diff"] for r in group)}


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _number(key, spec, scale=1.0):
    return lambda row: _fmt(None if row[key] is None else row[key] / scale, spec)


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:60]


MODEL, PRECISION = Column("model", lambda r: r["model"]), Column("precision", lambda r: r["precision"])
SIZES = (Column("params (M)", _number("params", ".2f", 1e6)), Column("MACs (M)", _number("macs", ".1f", 1e6)),
         Column("size (MB)", _number("size_bytes", ".2f", 1e6)))
VS_BASELINE = Column("vs {baseline}", _number("vs_baseline", ".2f"))

LATENCY = Metric(
    modes=("adb", "local"), table=device_key, pool=_latency, value="median_ms", int8_column="int8_speedup",
    int8_speedup=True,
    columns=(MODEL, PRECISION, Column("threads", lambda r: str(r["threads"])), *SIZES,
             Column("median (ms)", _number("median_ms", ".2f")), Column("p95 (ms)", _number("p95_ms", ".2f")),
             Column("int8 speed-up", _number("int8_speedup", ".2f")), VS_BASELINE),
    csv_file="report.csv",
    csv_columns=("model", "precision", "threads", "delegate", "params", "macs", "size_bytes", "median_ms", "p95_ms",
                 "rounds", "int8_speedup", "vs_baseline"),
    plot_value="median_ms", plot_stem="latency", plot_label="median latency (ms)", accuracy_stem="accuracy_latency",
    accuracy_label="measured median latency (ms)",
    suffix=lambda table, rows, tables: "" if tables == 1 else f"_{_slug(table)}")

INSTRUCTIONS = Metric(
    modes=("arm-emulated",), table=core_key, pool=_instructions, value="instructions", int8_column="int8_ratio",
    int8_speedup=False,
    columns=(MODEL, PRECISION, *SIZES, Column("instructions (M)", _number("instructions", ".2f", 1e6)),
             Column("first inference (M)", _number("first_inference", ".2f", 1e6)),
             Column("dot-product (M)", _number("dot_product", ".2f", 1e6)),
             Column("int8/float32", _number("int8_ratio", ".2f")), VS_BASELINE,
             Column("vs host", lambda r: "bit-exact" if r["bit_exact"] else f"max diff {r['max_abs_diff']:.2g}")),
    csv_file="instructions.csv",
    csv_columns=("model", "precision", "delegate", "params", "macs", "size_bytes", "instructions", "first_inference",
                 "dot_product", "int8_ratio", "vs_baseline", "bit_exact", "max_abs_diff"),
    plot_value="instructions_m", plot_stem="instructions", plot_label="instructions per inference (M), not time",
    accuracy_stem="accuracy_instructions", accuracy_label="instructions per inference (M)",
    suffix=lambda table, rows, tables: f"_{_slug(rows[0]['core'])}",
    note=("Instructions per inference on the real aarch64 LiteRT kernels under qemu-user, counted exactly; "
          "not milliseconds (no caches, no memory stalls, no pipeline), but the same kernels a phone runs, "
          "comparable between models on one core."))
METRICS = (LATENCY, INSTRUCTIONS)


def metric_of(record):
    return next(metric for metric in METRICS if record["mode"] in metric.modes)


def aggregate(records, metric, baseline, catalog):
    """{table: [row, ...]}: one row per (model, precision, threads, delegate) with the figures of ``metric``,
    in the catalog's order, then by name, precision and threads."""
    groups = defaultdict(list)
    for record in records:
        groups[(metric.table(record), *_label(record), record["threads"], record["delegate"])].append(record)
    tables = defaultdict(list)
    for (table, name, precision, threads, delegate), group in groups.items():
        label = group[0].get("label") or {}
        tables[table].append({
            "model": name, "precision": precision, "threads": threads, "delegate": delegate,
            "params": label.get("params"), "macs": label.get("macs"), "size_bytes": group[0]["model"]["size_bytes"],
            "top1": label.get("top1"), "weights": label.get("weights"), **metric.pool(group)})
    rank = {name: i for i, name in enumerate(catalog.order)}
    for rows in tables.values():
        rows.sort(key=lambda r: (rank.get(r["model"], len(rank)), r["model"], r["precision"], r["threads"]))
        _add_ratios(rows, metric, baseline)
    return dict(tables)


def _add_ratios(rows, metric, baseline):
    by_key = {(r["model"], r["precision"], r["threads"], r["delegate"]): r for r in rows}
    for row in rows:
        value = row[metric.value]
        base = by_key.get((baseline, row["precision"], row["threads"], row["delegate"]))
        row["vs_baseline"] = value / base[metric.value] if base else None
        float_row = by_key.get((row["model"], "float32", row["threads"], row["delegate"]))
        ratio = None
        if row["precision"] == "int8" and float_row:
            ratio = float_row[metric.value] / value if metric.int8_speedup else value / float_row[metric.value]
        row[metric.int8_column] = ratio


def markdown(tables, metric, baseline):
    out = io.StringIO()
    for table, rows in tables.items():
        out.write(f"### {table}\n\n" + (f"{metric.note}\n\n" if metric.note else ""))
        out.write("| " + " | ".join(c.header.format(baseline=baseline) for c in metric.columns) + " |\n")
        out.write("|" + "---|" * len(metric.columns) + "\n")
        for row in rows:
            out.write("| " + " | ".join(c.cell(row) for c in metric.columns) + " |\n")
        out.write("\n")
    return out.getvalue()


def csv_text(tables, columns):
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


def bar_plot(title, rows, catalog, value, ylabel):
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
    axes.set_xticks(range(len(models)), [catalog.label(m) for m in models], rotation=30, ha="right")
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


def accuracy_plot(device, rows, catalog, value="median_ms", xlabel="measured median latency (ms)"):
    """The accuracy-vs-latency (or vs ``value``) figure as PNG bytes."""
    return _png(accuracy_figure(device, rows, catalog, value, xlabel))


def accuracy_figure(device, rows, catalog, value="median_ms", xlabel="measured median latency (ms)"):
    """Published ImageNet top-1 against ``value`` (measured latency by default), one line per family (as the
    GhostNet paper's Fig. 7)."""
    import matplotlib

    plt = _pyplot()
    threads = min(r["threads"] for r in rows)
    figure, axes = plt.subplots(figsize=(7, 5))
    families = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["threads"] == threads and r["top1"] is not None:
            families[catalog.family(r["model"])][r["precision"]].append(r)
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
            points += [(r[value], r["top1"], f"{catalog.label(r['model'])} {precision}") for r in members]
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


def frontier(rows, value, precision="int8"):
    """The rows of ``precision`` with a published top-1 (fewest threads), cheapest by ``value`` first, each with
    ``frontier``: True when no other model is at least as accurate for at most the same cost."""
    threads = min(r["threads"] for r in rows)
    chosen = sorted((r for r in rows if r["precision"] == precision and r["threads"] == threads
                     and r["top1"] is not None), key=lambda r: (r[value], -r["top1"]))
    best, points = float("-inf"), []
    for row in chosen:  # cheapest first: on the frontier iff more accurate than everything cheaper
        points.append({**row, "frontier": row["top1"] > best})
        best = max(best, row["top1"])
    return points


def frontier_markdown(fronts, metric, catalog, precision="int8"):
    """The "## Frontier" section: per table, its ``frontier`` points (the models by cost with their published
    top-1, the paper's Fig. 7)."""
    out = io.StringIO()
    for table, points in fronts.items():
        if not points:
            continue
        if not out.tell():
            out.write(f"## Frontier: published ImageNet top-1 against {precision} {metric.accuracy_label}\n\n"
                      "Top-1 is each architecture's published ImageNet figure, not these files'; a model is on the "
                      "frontier when no other is at least as accurate for less.\n\n")
        out.write(f"### {table}\n\n| model | family | published top-1 (%) | {precision} {metric.accuracy_label} | "
                  "on the frontier |\n|---|---|---|---|---|\n")
        for r in points:
            out.write(f"| {r['model']} | {catalog.family(r['model'])} | {r['top1']:.2f} | {r[metric.plot_value]:.2f} "
                      f"| {'yes' if r['frontier'] else '-'} |\n")
        out.write("\n")
    return out.getvalue()


def frontier_plot(table, rows, points, catalog, metric, precision="int8"):
    """The accuracy figure of the ``precision`` rows alone, with the frontier (``points``) drawn through them (PNG
    bytes)."""
    edge = [r for r in points if r["frontier"]]
    figure = accuracy_figure(table, [r for r in rows if r["precision"] == precision], catalog, metric.plot_value,
                             f"{precision} {metric.accuracy_label}")
    figure.axes[0].step([r[metric.plot_value] for r in edge], [r["top1"] for r in edge], where="post",
                        color="grey", alpha=0.4, linewidth=5, zorder=0, label="frontier")
    figure.axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return _png(figure)


def provenance(records, command=None):
    """The header of report.md: when, by which command, on which machines, with which runtimes, how many runs."""
    import datetime

    from ghostnet_tf.cli import package_version

    dates = sorted(r["date"] for r in records)
    runtimes = sorted({f"{r['runtime']['name']} {r['runtime'].get('version') or ''}".strip() for r in records})
    devices = list(dict.fromkeys(metric_of(r).table(r) for r in records))
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


ESTIMATE_COLUMNS = ("model", "precision", "instructions", "estimated_ms", "error_pct", "basis")


def estimate_markdown(estimates, notes):
    out = io.StringIO()
    out.write("## Estimated milliseconds on published phones (not measured)\n\n"
              "Each figure is the count above times one scale (ms per instruction) fit on the published "
              "single-thread latencies of the MobileNets on that phone (`android_bench/arm/reference_latency.csv`); "
              "± is the largest leave-one-out relative error of that fit (docs/arm.md of ghostnet-tf). An estimate, "
              "never a measurement.\n\n")
    for heading, rows in estimates.items():
        out.write(f"### {heading}\n\n| model | precision | instructions (M) | estimated (ms) | ± (%) | basis |\n"
                  "|---|---|---|---|---|---|\n")
        for r in rows:
            out.write(f"| {r['model']} | {r['precision']} | {r['instructions'] / 1e6:.2f} | {r['estimated_ms']:.1f} "
                      f"| {r['error_pct']:.1f} | {r['basis']} |\n")
        out.write("\n")
    out.write("".join(f"- not estimated: {note}\n" for note in notes) + ("\n" if notes else ""))
    return out.getvalue()


MAX_WARNINGS = 5  # bad lines named one by one; the rest are counted


def read_results(results_path, warn=None):
    """The valid records of ``results_path``. With ``warn``, each bad line (the first MAX_WARNINGS of them) is
    named by ``warn("FILE:LINE: problem")`` and skipped; without it, the first one raises ValueError. No
    valid record at all raises ValueError naming the file."""
    bad = []
    records = results.read_records(results_path, None if warn is None else bad.append)
    if not records:
        raise ValueError(f"{results_path}: no benchmark records in the file"
                         + (f" ({len(bad)} bad line(s); the first: {bad[0]})" if bad else ""))
    for message in bad[:MAX_WARNINGS]:
        warn(f"{message} (line skipped)")
    if len(bad) > MAX_WARNINGS:
        warn(f"{results_path}: {len(bad) - MAX_WARNINGS} more bad lines skipped")
    return records


def check_outputs(outputs, inputs):
    """Refuse to write over an input: ValueError naming the file, before anything is written."""
    sources = {os.path.realpath(os.fspath(path)): path for path in inputs}
    for path in outputs:
        if os.path.realpath(path) in sources:
            raise ValueError(f"the report would overwrite its input {sources[os.path.realpath(path)]} "
                             f"({os.path.basename(path)} is one of the files it writes); give another --out folder")


def write_report(results_path, out_dir, catalog, baseline=None, command=None, estimator=None, warn=None):
    """Write report.md, and per metric its CSV and per-table PNGs (report.csv and latency plots;
    instructions.csv and instruction plots per emulated core) into ``out_dir``; return the markdown.
    ``baseline``: the model of the ratio column, which must be in the results (None: the catalog's, if
    measured). ``command``: the command line that produced the results, for the header. ``estimator``:
    instruction tables -> (estimate tables, notes) (``arm.estimate.estimator``): milliseconds estimated on
    published phones, written apart from the counts (estimates.csv). ``warn``: see ``read_results``. The
    files are made in memory, checked against the input and written last, each atomically."""
    records = read_results(results_path, warn)
    names = sorted({_label(r)[0] for r in records})
    if baseline is not None and baseline not in names:
        raise ValueError(f"--baseline: {baseline!r} is not among the measured models ({', '.join(names)})")
    if estimator and not any(metric_of(r) is INSTRUCTIONS for r in records):
        raise ValueError("--device: estimates come from instruction counts, and the results have no arm-emulated "
                         "records (run with --target arm, or bench arm)")
    baseline = baseline or catalog.baseline
    text, files = "", {}
    header = "# Benchmark report\n\n" + provenance(records, command)
    for metric in METRICS:
        chosen = [r for r in records if metric_of(r) is metric]
        if not chosen:
            continue
        tables = aggregate(chosen, metric, baseline, catalog)
        fronts = {table: frontier(rows, metric.plot_value) for table, rows in tables.items()}
        text += markdown(tables, metric, baseline)
        files[metric.csv_file] = csv_text(tables, metric.csv_columns).encode("utf-8")
        for table, rows in tables.items():
            suffix = metric.suffix(table, rows, len(tables))
            files[f"{metric.plot_stem}{suffix}.png"] = bar_plot(table, rows, catalog, metric.plot_value,
                                                                metric.plot_label)
            if any(r["top1"] is not None for r in rows):  # models outside the zoo have no published top-1
                files[f"{metric.accuracy_stem}{suffix}.png"] = accuracy_plot(table, rows, catalog, metric.plot_value,
                                                                             metric.accuracy_label)
            if fronts[table]:
                files[f"frontier{suffix}.png"] = frontier_plot(table, rows, fronts[table], catalog, metric)
        text += frontier_markdown(fronts, metric, catalog)
        if estimator and metric is INSTRUCTIONS:
            estimates, notes = estimator(tables)
            text += estimate_markdown(estimates, notes)
            files["estimates.csv"] = csv_text(estimates, ESTIMATE_COLUMNS).encode("utf-8")
    files["report.md"] = (header + text).encode("utf-8")
    paths = {os.path.join(out_dir, name): data for name, data in files.items()}
    check_outputs(paths, [results_path])
    os.makedirs(out_dir, exist_ok=True)
    for path, data in paths.items():
        write_atomic(path, data)
    return text
