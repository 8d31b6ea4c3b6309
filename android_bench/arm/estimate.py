"""Milliseconds on a published phone, estimated from an exact instruction count, never measured.

Why: instruction counts compare models on one core, but people ask "how many ms on a phone?". Published
single-thread phone latencies of the MobileNets (``reference_latency.csv``, one row per published figure, each
with its citation) and the emulated counts of the same models at the same input size
(``docs/results/arm/results.jsonl``, written by ``ghostnet bench compare --target arm``) are the two sources of
truth; the calibration is computed from them whenever it is used, never stored.

A calibration is one scale (ms per million instructions) per reference device, precision and source (a
runtime: XNNPACK's end2end_bench and 2019 TF-Lite differ), fit by least squares on the relative error. Its
error E is the largest relative error of the leave-one-out estimates (each model estimated from the others'
scale). An intercept was tried and raised the leave-one-out error on every calibration (docs/arm.md), so there
is none.

Coverage: every reference device's big core is an out-of-order ARMv8 core, counted on the emulated
Cortex-A76. float32 kernels use NEON FMA only, which all of them have; int8 kernels on the A76 take the
dot-product (SDOT) path, so int8 is estimated only for devices whose core has the dot product (Pixel 3 /
3a: Cortex-A75 class), never for Pixel 1 / Pixel 2 (ARMv8.0). Anything else is refused with ValueError.
"""
import csv
import os
from collections import defaultdict
from dataclasses import dataclass

REFERENCE_CSV = os.path.join(os.path.dirname(__file__), "reference_latency.csv")
COUNTS_JSONL = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "results", "arm",
                                             "results.jsonl"))
EMULATED_CORE = "cortex-a76"
PRECISIONS = ("float32", "int8")
ERROR_KIND = "max leave-one-out relative error"


@dataclass(frozen=True)
class Reference:
    """One published phone measurement (a row of reference_latency.csv)."""
    device: str
    device_name: str
    soc: str
    core: str
    dotprod: bool
    threads: int
    precision: str
    runtime: str
    input_size: int
    model: str
    ms: float
    source: str
    citation: str


def read_references(path=REFERENCE_CSV):
    with open(path, encoding="utf-8", newline="") as handle:
        return [Reference(row["device"], row["device_name"], row["soc"], row["core"], row["dotprod"] == "true",
                          int(row["threads"]), row["precision"], row["runtime"], int(row["input_size"]), row["model"],
                          float(row["ms"]), row["source"], row["citation"]) for row in csv.DictReader(handle)]


def read_counts(path=COUNTS_JSONL):
    """{(model, precision, core, input size): instructions per inference} of labelled arm-emulated records."""
    from android_bench import results

    if not os.path.isfile(path):
        raise ValueError(f"--device: the committed counts of the reference models ({path}) are missing; "
                         "estimates need a source checkout")
    counts = {}
    for record in results.read_records(path):
        label = record.get("label")
        if record["mode"] == "arm-emulated" and label:
            size = record["model"]["input_shape"][1]
            counts[(label["name"], label["precision"], record["device"]["cpu"], size)] = \
                record["instructions"]["per_inference"]
    return counts


def fit_scale(points):
    """The scale k minimising sum((k * instructions / ms - 1)^2) over (instructions, ms) points."""
    ratios = [instructions / ms for instructions, ms in points]
    return sum(ratios) / sum(r * r for r in ratios)


def leave_one_out(points):
    """Relative error of each point's estimate from the scale fit on the other points."""
    return [fit_scale(points[:i] + points[i + 1:]) * x / y - 1 for i, (x, y) in enumerate(points)]


@dataclass(frozen=True)
class Calibration:
    """ms = scale * instructions for one device, precision and source; ``error`` is E (a fraction)."""
    device: str
    device_name: str
    precision: str
    source: str
    runtime: str
    core: str
    scale: float  # ms per instruction
    error: float
    models: tuple  # ((model, instructions, published ms, leave-one-out estimate ms), ...)

    def estimate(self, instructions, note=""):
        """The record's ``estimates`` entry for a count on ``self.core``."""
        return {"device": self.device, "device_name": self.device_name, "precision": self.precision,
                "ms": self.scale * instructions, "error_pct": 100 * self.error, "error_kind": ERROR_KIND,
                "scale_ms_per_m_instructions": self.scale * 1e6, "emulated_core": self.core,
                "basis": f"{self.source} ({self.runtime}): {', '.join(m[0] for m in self.models)}", "note": note}


def calibrations(references=None, counts=None):
    """Every calibration the two committed tables support: groups of at least two counted models."""
    references = read_references() if references is None else references
    counts = read_counts() if counts is None else counts
    groups = defaultdict(list)
    for ref in references:
        key = (ref.model, ref.precision, EMULATED_CORE, ref.input_size)
        if ref.threads == 1 and ref.precision in PRECISIONS and key in counts and covers(ref, ref.precision) is None:
            groups[(ref.device, ref.precision, ref.source, ref.runtime)].append((ref, counts[key]))
    found = []
    for (device, precision, source, runtime), members in groups.items():
        if len(members) < 2:  # one model: no leave-one-out error to state
            continue
        points = [(instructions, ref.ms) for ref, instructions in members]
        scale, errors = fit_scale(points), leave_one_out(points)
        models = tuple((ref.model, x, ref.ms, (1 + e) * ref.ms) for (ref, x), e in zip(members, errors))
        found.append(Calibration(device, members[0][0].device_name, precision, source, runtime, EMULATED_CORE,
                                 scale, max(abs(e) for e in errors), models))
    return found


def covers(reference, precision):
    """None when the emulated core covers ``reference``'s core at ``precision``, else why not (one line)."""
    if precision == "int8" and not reference.dotprod:
        return (f"{reference.device_name}'s big core ({reference.core}) has no dot product, and the emulated "
                f"{EMULATED_CORE}'s int8 count takes the SDOT path")
    return None


def for_device(device, precision, core, found=None, references=None):
    """The calibrations of ``device`` at ``precision`` for a count on ``core``; ValueError says why there are none."""
    references = read_references() if references is None else references
    rows = [r for r in references if r.device == device]
    if not rows:
        raise ValueError(f"--device {device}: no published measurements; choose from "
                         f"{', '.join(sorted({r.device for r in references}))}")
    if core != EMULATED_CORE:
        raise ValueError(f"--device {device}: its calibration is on emulated {EMULATED_CORE} counts; this count is "
                         f"on {core} (count with --cpu {EMULATED_CORE})")
    why = covers(rows[0], precision)
    if why:
        raise ValueError(f"--device {device}: no {precision} estimate: {why}")
    chosen = [c for c in (calibrations(references) if found is None else found)
              if c.device == device and c.precision == precision]
    if not chosen:
        raise ValueError(f"--device {device}: no {precision} calibration (fewer than two published {precision} "
                         "models with emulated counts)")
    return chosen


def record_precision(record):
    """float32 or int8: the label's, else from the input type (int8 files take int8/uint8 input)."""
    label = record.get("label") or {}
    return label.get("precision") or ("float32" if record["model"]["input_dtype"] == "float32" else "int8")


def estimate_record(record, devices, found=None):
    """The ``estimates`` of an arm-emulated record on each of ``devices`` (ValueError when one is not covered)."""
    precision, core = record_precision(record), record["device"]["cpu"]
    size = record["model"]["input_shape"][1]
    note = "" if size == 224 else f"calibrated at 224x224, this model takes {size}x{size}"
    return [c.estimate(record["instructions"]["per_inference"], note)
            for device in devices for c in for_device(device, precision, core, found)]


def describe(estimate):
    """One line per estimate, said to be one."""
    return (f"estimated {estimate['ms']:.1f} ms on {estimate['device_name']} (big core, {estimate['precision']}), "
            f"±{estimate['error_pct']:.1f} % [{estimate['error_kind']}; scale "
            f"{estimate['scale_ms_per_m_instructions']:.3f} ms per M instructions from {estimate['basis']}; "
            "not a measurement]" + (f" ({estimate['note']})" if estimate["note"] else ""))


def parse_devices(text):
    """argparse type of --device: comma-separated reference device ids, each checked against the table."""
    import argparse

    devices, known = [d for d in text.split(",") if d], sorted({r.device for r in read_references()})
    unknown = [d for d in devices if d not in known]
    if unknown or not devices:
        raise argparse.ArgumentTypeError(f"no published measurements of {', '.join(unknown) or 'no device'}; "
                                         f"choose from {', '.join(known)}")
    return devices


def estimate_tables(tables, devices):
    """{heading: [row, ...]}: per phone of ``devices``, the milliseconds ESTIMATED from the instruction rows of
    the emulated core its calibration uses, and the notes saying what is not
    covered. Rows of other cores are left out; a calibration never crosses cores."""
    found, references = calibrations(), read_references()
    out, notes = {}, []
    for device in devices:
        for rows in tables.values():
            core = rows[0]["core"]
            for row in rows:
                try:
                    chosen = for_device(device, row["precision"], core, found, references)
                except ValueError as exc:
                    notes.append(str(exc))
                    continue
                for c in chosen:
                    figure = c.estimate(row["instructions"])
                    heading = f"{c.device_name} (big core, 1 thread), from emulated {core}"
                    out.setdefault(heading, []).append({
                        "model": row["model"], "precision": row["precision"], "instructions": row["instructions"],
                        "estimated_ms": figure["ms"], "error_pct": figure["error_pct"], "basis": figure["basis"]})
    return out, list(dict.fromkeys(notes))


def estimator(devices):
    """``report.write_report``'s estimator for ``devices`` (None when there are none)."""
    return (lambda tables: estimate_tables(tables, devices)) if devices else None


def validation_markdown(found):
    """The leave-one-out table: each published figure beside its estimate from the other models' scale."""
    lines = ["| device | precision | source | model | emulated instructions (M) | published (ms) | "
             "leave-one-out estimate (ms) | error | scale (ms per M instructions) | E (max) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in found:
        for model, instructions, ms, loo in c.models:
            lines.append(f"| {c.device_name} | {c.precision} | {c.source} | {model} | {instructions / 1e6:.2f} "
                         f"| {ms:g} | {loo:.1f} | {100 * (loo / ms - 1):+.1f} % | {c.scale * 1e6:.4f} "
                         f"| {100 * c.error:.1f} % |")
    return "\n".join(lines) + "\n"


def validation_plot(found):
    """PNG bytes: leave-one-out estimate against published ms, one point per model and calibration."""
    from android_bench.report import _png, _pyplot

    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    for c in found:
        axes.plot([m[2] for m in c.models], [m[3] for m in c.models], "o" if c.precision == "float32" else "s",
                  label=f"{c.device_name} {c.precision}, {c.source} (E {100 * c.error:.1f} %)")
    top = max(m[2] for c in found for m in c.models) * 1.15
    axes.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--")
    axes.set_xlim(0, top)
    axes.set_ylim(0, top)
    axes.set_xlabel("published single-thread latency (ms)")
    axes.set_ylabel("estimated from emulated cortex-a76 instructions (ms), leave-one-out")
    axes.set_title("Estimated vs published milliseconds (each model left out of its own fit)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    return _png(figure)


def write_validation(out_dir):
    """validation.md and validation.png in ``out_dir`` from the committed tables (docs/results/estimates)."""
    from ghostnet_tf.files import write_atomic

    found = calibrations()
    os.makedirs(out_dir, exist_ok=True)
    write_atomic(os.path.join(out_dir, "validation.md"), validation_markdown(found).encode("utf-8"))
    write_atomic(os.path.join(out_dir, "validation.png"), validation_plot(found))


if __name__ == "__main__":
    import sys

    write_validation(sys.argv[1] if len(sys.argv) > 1 else "docs/results/estimates")
