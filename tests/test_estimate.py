"""Milliseconds estimated on published phones (android_bench/arm/estimate.py): the fit and its leave-one-out error,
the refusals, the record field, the report table, and (slow) fresh emulated counts against the published ratios.

The E values pinned here are the ones docs/arm.md states, computed from the committed reference table and the
committed counts (docs/results/arm/results.jsonl)."""
import json

import pytest

from android_bench import results
from android_bench.arm import estimate
from ghostnet_tf.cli import main


def ref(model, ms, device="pixel-3", precision="int8", dotprod=True, source="paper"):
    return estimate.Reference(device, device.title(), "SoC", "Core", dotprod, 1, precision, "TF-Lite", 224, model, ms,
                              source, "a citation")


def test_the_scale_is_exact_on_proportional_points():
    assert estimate.fit_scale([(10, 5), (20, 10), (40, 20)]) == pytest.approx(0.5)
    assert estimate.leave_one_out([(10, 5), (20, 10)]) == pytest.approx([0, 0])


def test_leave_one_out_estimates_each_point_from_the_others():
    # (10, 10) and (10, 20): left out, each is estimated with the other's scale, 2x and 0.5x
    assert estimate.leave_one_out([(10, 10), (10, 20)]) == pytest.approx([1.0, -0.5])


def test_calibrations_group_by_device_precision_and_source_and_need_two_models():
    references = [ref("a", 10), ref("b", 20), ref("a", 30, source="other"),
                  ref("a", 50, device="pixel-1", dotprod=False)]
    counts = {(m, "int8", "cortex-a76", 224): n for m, n in (("a", 1e6), ("b", 2.2e6))}
    (found,) = estimate.calibrations(references, counts)  # "other" has one model, pixel-1 has no dot product
    assert (found.device, found.source, [m[0] for m in found.models]) == ("pixel-3", "paper", ["a", "b"])
    assert found.error == pytest.approx(0.1)  # b from a's scale: 22 against 20
    assert found.estimate(3e6)["ms"] == pytest.approx(found.scale * 3e6)


@pytest.mark.parametrize("device, precision, core, message", [
    ("pixel-9", "int8", "cortex-a76", "--device pixel-9: no published measurements; choose from pixel-1, pixel-2"),
    ("pixel-3", "int8", "cortex-a53", "its calibration is on emulated cortex-a76 counts; this count is on cortex-a53"),
    ("pixel-1", "int8", "cortex-a76", "no int8 estimate: Pixel's big core (Kryo) has no dot product"),
    ("pixel-3a", "int8", "cortex-a76", "--device pixel-3a: no int8 calibration"),
])
def test_uncovered_devices_are_refused(device, precision, core, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        estimate.for_device(device, precision, core)


def test_the_committed_calibrations_and_their_leave_one_out_errors():
    found = {(c.device, c.precision, c.source): c for c in estimate.calibrations()}
    errors = {key: round(100 * c.error, 1) for key, c in found.items()}
    assert errors == {("pixel-1", "float32", "xnnpack-readme"): 5.5, ("pixel-2", "float32", "xnnpack-readme"): 11.0,
                      ("pixel-3a", "float32", "xnnpack-readme"): 7.8,
                      ("pixel-1", "float32", "slim-mobilenet-readme"): 2.6,
                      ("pixel-2", "float32", "slim-mobilenet-readme"): 4.8,
                      ("pixel-3", "float32", "slim-mobilenet-readme"): 6.2,
                      ("pixel-3", "int8", "slim-mobilenet-readme"): 6.5}
    assert found[("pixel-3", "int8", "slim-mobilenet-readme")].scale * 1e6 == pytest.approx(0.7114, abs=1e-4)


def test_every_reference_row_cites_its_source():
    rows = estimate.read_references()
    assert len(rows) == 42 and all(r.citation and r.ms > 0 and r.threads == 1 for r in rows)
    assert all("@" in r.citation for r in rows)  # a commit of the file the figure was copied from


def test_a_record_carries_the_estimate_apart_from_the_count():
    (record,) = [r for r in results.read_records(estimate.COUNTS_JSONL)
                 if r["label"]["name"] == "ghostnet_100" and r["label"]["precision"] == "int8"
                 and r["device"]["cpu"] == "cortex-a76"]
    count = dict(record["instructions"])
    record["estimates"] = estimate.estimate_record(record, ["pixel-3"])
    results.validate_record(json.loads(json.dumps(record)))
    assert record["instructions"] == count
    (figure,) = record["estimates"]
    assert figure["ms"] == pytest.approx(0.7114e-6 * count["per_inference"], rel=1e-4)
    line = estimate.describe(figure)
    assert line.startswith("estimated 29.0 ms on Pixel 3 (big core, int8), ±6.5 %") and "not a measurement" in line
    record["estimates"] = [{"device": "pixel-3"}]
    with pytest.raises(ValueError, match="estimates must be a list"):
        results.validate_record(record)


def test_the_report_adds_estimate_tables(tmp_path):
    from android_bench import report, zoo

    catalog = report.Catalog.of(zoo.ZOO.values(), zoo.DEFAULT_BASELINE)
    text = report.write_report(estimate.COUNTS_JSONL, tmp_path, catalog, estimator=estimate.estimator(["pixel-3"]))
    assert "## Estimated milliseconds on published phones (not measured)" in text
    assert "| ghostnet_100 | int8 | 40.77 | 29.0 | 6.5 |" in text
    assert "not estimated: --device pixel-3: its calibration is on emulated cortex-a76 counts" in text
    assert (tmp_path / "estimates.csv").read_text().startswith("device,model,precision,instructions,estimated_ms")


@pytest.mark.parametrize("argv, message", [
    (["bench", "arm", "--model", "m.tflite", "--device", "pixel-9"], "no published measurements of pixel-9"),
    (["bench", "arm", "--model", "m.tflite", "--device", "pixel-3", "--cpu", "cortex-a53"],
     "--device: the phone calibrations are on emulated cortex-a76 counts, not cortex-a53"),
    (["bench", "report", estimate.COUNTS_JSONL, "--device", "pixel-2,nokia"], "no published measurements of nokia"),
])
def test_device_errors_are_one_line_and_exit_2(argv, message, cli):
    code, _, err = cli(*argv)
    assert code == 2 and message in err.strip().splitlines()[-1]  # argparse's usage lines come first


def test_bench_arm_prints_and_records_the_estimate(arm_setup, models, tmp_path, capsys):
    out = tmp_path / "arm.jsonl"
    assert main(["bench", "arm", "--model", str(models["int8"]), "--runs", "1", "--device", "pixel-3",
                 "--json-lines", str(out)]) == 0
    (record,) = results.read_records(out)
    (figure,) = record["estimates"]
    assert figure["device"] == "pixel-3" and figure["note"] == "calibrated at 224x224, this model takes 32x32"
    printed = capsys.readouterr().out.splitlines()
    assert printed[1].startswith("  estimated ") and "on Pixel 3 (big core, int8), ±6.5 %" in printed[1]


@pytest.mark.slow
def test_fresh_counts_reproduce_the_published_ratios(arm_setup, tmp_path):
    """Converts MobileNetV3-Large 1.0 and -Small 1.0 to int8 at 224 (the models of the Pixel 3 int8 calibration),
    counts them on the emulated A76 and fits the calibration on these fresh counts: each leave-one-out estimate
    must stay within the committed E (6.5 %) of the published figure, and the counts within 0.1 % of the
    committed ones (they do not depend on weights)."""
    from android_bench import compare, zoo
    from android_bench.cli.compare import COMPARE_QUICK
    from android_bench.runner import RunConfig

    names = ["mobilenet_v3_large_100", "mobilenet_v3_small_100"]
    options = {**COMPARE_QUICK, "weights": None, "weights_sha256": None}
    converted = compare.convert_zoo(zoo.select(names), (224, 224), str(tmp_path), options, jobs=2)
    core = arm_setup.on("cortex-a76")
    fresh = {(name, "int8", "cortex-a76", 224):
             core.measure(converted[(name, "int8")]["path"], RunConfig(runs=1, warmup=0))["instructions"]["per_inference"]
             for name in names}
    committed = estimate.read_counts()
    for key, count in fresh.items():
        assert count == pytest.approx(committed[key], rel=1e-3)
    (found,) = [c for c in estimate.calibrations(counts=fresh) if c.device == "pixel-3" and c.precision == "int8"]
    assert found.error <= 0.066
