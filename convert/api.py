"""The conversion pipeline in one call: load -> export -> convert -> audit -> fidelity -> per-layer, returning a
``ConversionReport``."""
import time

from convert import DEFAULT_CALIBRATION_STEPS, DEFAULT_EVAL_COUNT, verify
from convert.calibration import EVALUATION_SEED, image_source, takes_pixels
from convert.converter import ConversionJob, input_size_of, publish
from convert.report import ConversionReport, fidelity_warnings, report_bytes
from convert.source import as_source
from convert.spec import ConversionSpec, FileOptions
from ghostnet_tf.cliutil import check_distinct_paths, check_input_file
from ghostnet_tf.files import check_writable
from ghostnet_tf.preprocessing import model_inputs
from ghostnet_tf.runtime import get_runtime


def versions():
    """What produced and checked the file: TFLite files differ between converter versions."""
    import keras
    import tensorflow as tf

    runtime = get_runtime()
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "runtime": f"{runtime.name} {runtime.version}"}


def input_note(audit, pixels):
    """How a phone app feeds the converted input, in one line."""
    detail = audit["input"]
    if detail["scale"] is None:
        return "float input: feed " + ("RGB pixels in [0, 255]" if pixels else "ImageNet-normalized RGB")
    scale, zero = detail["scale"], detail["zero_point"]
    if pixels and scale == 1.0 and (detail["dtype"], zero) == ("uint8", 0):
        return "raw uint8 camera pixels pass straight in (scale 1, zero-point 0)"
    if pixels and scale == 1.0 and (detail["dtype"], zero) == ("int8", -128):
        return "int8 input = pixel - 128 (scale 1, zero-point -128)"
    return f"quantize the input as round(x / {scale:.6g}) + {zero}"


def verify_model(content, keras_model, quantize, eval_images=None, eval_count=DEFAULT_EVAL_COUNT,
                 input_size=None, show_progress=True, audit=None):
    """Audit a .tflite model (bytes or path) and compare it with ``keras_model`` on held-out images
    (folder, .npy/.npz, array, or None for the built-in set that calibration never uses).
    ``audit``: the converter's own audit of these bytes, so it is not done twice. ``keras_model``: a Keras model
    or a ``ModelSource``."""
    source = as_source(keras_model)
    keras_model = source.model
    if not isinstance(content, (bytes, bytearray)):
        with open(check_input_file(content, "--tflite"), "rb") as f:
            content = f.read()
    size = input_size_of(keras_model, input_size)
    pixels = takes_pixels(keras_model)
    images = image_source(eval_images, size, eval_count, "--eval-images", EVALUATION_SEED, show_progress,
                          source.transform_for(size))
    audit = audit or verify.audit(content, quantize)
    return {
        "audit": audit,
        "input_note": input_note(audit, pixels),
        "eval_images": images.describe(),
        "fidelity": verify.fidelity(content, keras_model, model_inputs(images.images, pixels), show_progress),
    }


def app_warnings(conversion):
    """Say it when MediaPipe's ImageClassifier (Android's standard API) cannot take the file."""
    if conversion.io == "int8":
        return ["MediaPipe's ImageClassifier refuses int8 inputs (uint8 or float32 only): use --io uint8 "
                "(a model taking [0, 255] pixels) or float32"]
    if conversion.io == "float32" and not conversion.takes_pixels:
        return ["MediaPipe's ImageClassifier cannot feed this file: the model expects ImageNet-normalized input "
                "(per-channel mean/std, which MediaPipe does not implement); the TFLite Task Library can. Build "
                "the model with include_preprocessing=True for MediaPipe"]
    return []


def convert(model, out_path, spec=ConversionSpec(), show_progress=True, report_path=None, warn=None):
    """Convert ``model`` (a Keras model or a ``ModelSource``) to ``out_path`` as ``spec`` says, audit the file,
    measure its fidelity on held-out images (and the per-layer int8 error if asked) and return the
    ``ConversionReport`` (what ``ghostnet convert`` prints and ``--report`` writes). One export and one load of
    each image set serve every stage. The file (and the JSON report at ``report_path``) is written last, when
    every check passed, so a failure leaves what was there. ``warn(text)``: told at once of image sets smaller
    than asked (the report's warnings say it too)."""
    start = time.perf_counter()
    if report_path is not None:
        check_distinct_paths(**{"--output": out_path, "--report": report_path})
        check_writable(report_path, "--report")
    job = ConversionJob(model, spec, out_path, show_progress, verify=True)
    for text in job.notes if warn else ():
        warn(text)
    with job.export() as export:
        conversion = job.build(export)
        per_layer = job.per_layer(export) if spec.per_layer else None
    checked = verify_model(conversion.content, job.source, spec.quantize, job.held_out, spec.eval_count,
                           conversion.input_size, show_progress, audit=conversion.audit)
    report = ConversionReport(
        model={**job.source.description, "input_size": list(conversion.input_size),
               "takes_pixels": conversion.takes_pixels,
               "keras_params": int(job.model.count_params())},  # Keras counts BN moving statistics too
        output={"path": str(conversion.path), "size_bytes": conversion.size_bytes},
        quantize=conversion.quantize, io=conversion.io, calibration=conversion.calibration,
        rewrites=conversion.rewrites, keep_float=conversion.keep_float, metadata=conversion.metadata,
        seconds=conversion.seconds, **checked, per_layer=per_layer, warnings=[], versions=versions())
    report.warnings = job.notes + conversion_warnings(report, conversion)
    report.seconds["wall"] = round(time.perf_counter() - start, 2)
    publish({out_path: conversion.content, report_path: report_bytes(report.to_json())})
    return report


def conversion_warnings(report, conversion):
    """What the user should know about the file: calibration, --keep-float, graph hygiene, fidelity, apps."""
    warnings = []
    if conversion.calibration and conversion.calibration["source"] == "built-in":
        warnings.append("calibrated on the built-in synthetic images: real images from the target "
                        "domain (--calibration DIR) give better int8 accuracy")
    search = (conversion.keep_float or {}).get("search")
    if search and not search["reached"]:
        warnings.append(
            f"--keep-float auto: the target agreement {search['target_agreement_pct']:g} % was not reached on the "
            f"{search['images']} calibration images with {len(search['steps'])} float ops (best "
            f"{max(s['agreement_pct'] for s in search['steps']):.1f} %); consider --quantize int16x8")
    warnings += [f"graph hygiene: {check.replace('_', ' ')} failed at {len(result['offenders'])} place(s), "
                 "the model runs slower than it could" for check, result in report.audit["hygiene"].items()
                 if not result["ok"]]
    return warnings + fidelity_warnings(report.to_json()) + app_warnings(conversion)


def convert_and_verify(model, out_path, quantize="int8", io=None, calibration=None,
                       calibration_steps=DEFAULT_CALIBRATION_STEPS, eval_images=None, eval_count=DEFAULT_EVAL_COUNT,
                       input_size=None, per_layer=False, show_progress=True,
                       rewrite=None, keep_float=None, options=FileOptions()):
    """``convert`` with the spec's options as keywords; returns the report as JSON-ready dict."""
    spec = ConversionSpec(quantize, io, calibration, calibration_steps, eval_images, eval_count, input_size, rewrite,
                          keep_float, per_layer, options)
    return convert(model, out_path, spec, show_progress).to_json()
