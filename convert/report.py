"""The conversion/evaluation report: a table for people, JSON (same content) for scripts."""
import dataclasses
import json
from dataclasses import dataclass

from ghostnet_tf.files import write_atomic

# Below these the int8 model is flagged: the known GhostNet failure is a silent collapse, so say it.
MIN_TOP1_AGREEMENT_PCT = 90.0
MIN_SQNR_DB = 15.0
# A float model whose top output averages under this many times 1/classes is treated as untrained.
UNTRAINED_PEAK_FACTOR = 4.0


@dataclass
class ConversionReport:
    """What a conversion made and measured (``convert.api.convert``); ``to_json`` is the ``--report`` file."""
    model: dict  # name, where it came from, input_size, takes_pixels, keras_params
    output: dict  # path, size_bytes
    quantize: str
    io: str
    calibration: dict
    rewrites: list
    keep_float: dict
    metadata: dict
    seconds: dict
    audit: dict
    input_note: str
    eval_images: dict
    fidelity: dict
    per_layer: list
    warnings: list
    versions: dict

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data):
        return cls(**data)

    def format(self):
        return format_conversion(self.to_json())

    def write(self, path):
        write_json(self.to_json(), path)


def fidelity_warnings(report):
    """Say it when a quantized model disagrees with the float one, or when that cannot be judged."""
    fidelity = report.get("fidelity")
    if report.get("quantize") == "float32" or not fidelity:
        return []
    poor = []
    if fidelity["top1_agreement_pct"] < MIN_TOP1_AGREEMENT_PCT:
        poor.append(f"top-1 agreement {fidelity['top1_agreement_pct']:.1f} % < {MIN_TOP1_AGREEMENT_PCT:g} %")
    if fidelity["sqnr_db"] is not None and fidelity["sqnr_db"] < MIN_SQNR_DB:
        poor.append(f"SQNR {fidelity['sqnr_db']:.1f} dB < {MIN_SQNR_DB:g} dB")
    if not poor:
        return []
    if fidelity["reference_peak_mean"] < UNTRAINED_PEAK_FACTOR / fidelity["classes"]:
        return [f"{report['quantize']} fidelity cannot be judged ({'; '.join(poor)}): the float model's outputs are "
                "near-uniform (untrained weights?), below what an 8-bit output resolves; pass trained --weights"]
    return [f"{report['quantize']} fidelity is poor ({'; '.join(poor)}): the quantized model disagrees with "
            "the float model; calibrate on real images of the target domain and check --per-layer"]


def report_bytes(report):
    """A JSON-ready report as the bytes of its file."""
    return (json.dumps(report, indent=2, default=str) + "\n").encode()


def write_json(report, path):
    write_atomic(path, report_bytes(report))


def _quant(detail):
    text = f"{detail['dtype']} {detail['shape']}"
    if detail["scale"] is not None:
        text += f" scale {detail['scale']:.6g} zero-point {detail['zero_point']}"
    return text


def _check(ok):
    return "ok" if ok else "FAIL"


def format_conversion(report):
    """The human-readable table of a ``ghostnet convert`` report."""
    audit, seconds = report["audit"], report["seconds"]
    lines = [f"{report['model']['name']} -> {report['output']['path']}  "
             f"({report['quantize']}, io {report['io']}, input {report['model']['input_size']})",
             f"  {'size':<22}{report['output']['size_bytes']:,} bytes",
             f"  {'conversion time':<22}{seconds['total']:.1f} s (export {seconds['export']:.1f} s, "
             f"convert{' + calibration' if report['calibration'] else ''} {seconds['convert']:.1f} s)"]
    if report["calibration"]:
        cal = report["calibration"]
        pinned = "; input range pinned to [0, 255]" if cal["range_anchored"] else ""
        lines.append(f"  {'calibration':<22}{cal['count']} images from {cal['source']}"
                     f" ({cal['skipped']} unreadable skipped){pinned}")
    lines += [f"  {'input':<22}{_quant(audit['input'])}", f"  {'output':<22}{_quant(audit['output'])}"]
    if report.get("input_note"):
        lines.append(f"  {'':<22}{report['input_note']}")
    if audit["int8"] is not None:
        kept = audit["int8"].get("kept_float") or []
        but = f"; {len(kept)} kept in float on purpose, below" if kept else ""
        lines.append(f"  {'all ops int8':<22}{_check(audit['int8']['ok'])} ({audit['op_count']} ops{but})")
        lines += [f"    {o['op']} #{o['op_index']}: {o['reason']}: {o['tensor']}" for o in audit["int8"]["offenders"]]
    if report.get("keep_float"):
        lines += _keep_float_lines(report["keep_float"], audit["int8"]["kept_float"])
    for check, result in audit["hygiene"].items():
        lines.append(f"  {check.replace('_', ' '):<22}{_check(result['ok'])}")
        lines += [f"    {o['ops']}: {o['tensor']}" for o in result["offenders"]]
    lines.append(f"  {'ops':<22}" + ", ".join(f"{name} {count}" for name, count in audit["ops"].items()))
    if audit.get("xnnpack"):  # reports written before the audit counted partitions have none
        lines.append(f"  {'xnnpack':<22}{_partitions(audit['xnnpack'])}")
    lines.append(f"  {'op versions':<22}" + ", ".join(f"{name} v{v}" for name, v in audit["op_versions"].items()))
    lines.append(f"  {'min runtime':<22}TFLite {audit['min_runtime_version'] or 'not recorded'}")
    if report.get("metadata"):
        meta = report["metadata"]
        labels = f"{meta['labels']} class names" if meta["labels"] else "no class names (give --labels FILE)"
        norm = meta["input"]["mean"]
        norm = f"; input normalization mean {norm} std {meta['input']['std']}" if norm else ""
        transform = meta["transform"]
        lines.append(f"  {'metadata':<22}{meta['name']}: {labels}; transform {transform['size'][0]}x"
                     f"{transform['size'][1]} crop {transform['crop_pct']:g} {transform['interpolation']}{norm}")
    fidelity = report["fidelity"]
    lines += [f"  fidelity vs Keras float on {fidelity['images']} images from {report['eval_images']['source']} "
              "(none used for calibration)",
              f"    {'top-1 agreement':<20}{fidelity['top1_agreement_pct']:.1f} %",
              f"    {'mean cosine':<20}{fidelity['cosine_mean']:.6f}",
              f"    {'max abs error':<20}{fidelity['max_abs_error']:.3g}",
              f"    {'SQNR':<20}" + ("identical" if fidelity["sqnr_db"] is None else f"{fidelity['sqnr_db']:.1f} dB")]
    if report.get("per_layer"):
        lines.append("  per-layer quantization error, worst first (RMSE / scale):")
        for row in report["per_layer"][:15]:
            error = "-" if row["rmse_over_scale"] is None else f"{row['rmse_over_scale']:.3f}"
            lines.append(f"    {error:>8}  {row['op']:<18} {row['tensor']}")
    lines += [f"WARNING: {w}" for w in report["warnings"]]
    return "\n".join(lines)


def _partitions(found):
    """'1 partition, 359 of 361 ops delegated (not: QUANTIZE 2)': more than one means ops left the delegate."""
    if not found["partitions"]:
        return f"not applied by this runtime ({found['ops']} ops on the builtin kernels)"
    left = ", ".join(f"{name} {count}" for name, count in found["not_delegated"].items())
    return (f"{found['partitions']} partition{'s' * (found['partitions'] > 1)}, {found['delegated_ops']} of "
            f"{found['ops']} ops delegated" + (f" (not: {left})" if left else ""))


def _keep_float_lines(section, kept):
    search = section["search"]
    if search is None:
        head = f"{len(kept)} ops (--keep-float {','.join(section['requested'])})"
    else:
        reached = search["steps"][-1]["agreement_pct"] if search["steps"] else search["int8_agreement_pct"]
        head = (f"{len(kept)} ops (auto: target {search['target_agreement_pct']:g} % top-1 agreement on "
                f"{search['images']} calibration images; full int8 {search['int8_agreement_pct']:.1f} %, "
                f"now {reached:.1f} %{'' if search['reached'] else ', NOT reached'})")
    return [f"  {'kept in float':<22}{head}"] + [
        f"    {o['op']} #{o['op_index']} {o['layer']}: "
        + ("its float input comes from a kept op" if o["follows_kept_op"] else section["why"][o["layer"]])
        for o in kept]


def format_evaluation(report):
    """Top-1/top-5 side by side, with the drop of the .tflite model vs the Keras float model."""
    lines = [f"{report['images']} images, {report['classes']} classes from {report['data']}"
             f"{' (' + str(report['skipped']) + ' unreadable skipped)' if report['skipped'] else ''}",
             f"  {'model':<40}{'top-1 %':>9}{'top-5 %':>9}"]
    for entry in report["models"]:
        ties = f"  ({entry['top1_ties']} images with a tied top score, counted as misses)" if entry["top1_ties"] else ""
        lines.append(f"  {entry['name']:<40}{entry['top1_pct']:9.2f}{entry['top5_pct']:9.2f}{ties}")
    if report.get("drop"):
        drop = report["drop"]
        lines.append(f"  {'drop (tflite - keras)':<40}{drop['top1_pct']:+9.2f}{drop['top5_pct']:+9.2f}")
    return "\n".join(lines)
