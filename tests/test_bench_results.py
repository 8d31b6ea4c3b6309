"""The result record: statistics, validation, durable JSON-lines appends, reading back."""
import json

import pytest

from android_bench import results

MODEL = {"path": "/m.tflite", "sha256": "0" * 64, "size_bytes": 10, "input_shape": [1, 8, 8, 3],
         "input_dtype": "int8", "input_quantization": {"scale": 0.5, "zero_point": -3}}


def record(threads=1, samples=(100.0, 200.0, 300.0)):
    timings = {"init_us": 1500.0, "first_inference_us": 400.0, "warmup": results.summarize([400.0]),
               "measured": results.summarize(samples), "memory": {"peak_mb": 12.0, "source": "test"}}
    return results.make_record(mode="local", model=MODEL, runtime={"name": "ai-edge-litert", "version": "x"},
                               delegate="xnnpack", threads=threads, cpu_mask=None, device={"hostname": "h"},
                               timings=timings, date="2026-01-01T00:00:00+00:00")


def test_summarize_uses_nearest_rank_percentiles_and_population_std():
    stats = results.summarize(range(1, 21))  # 1..20
    assert stats["count"] == 20 and stats["first_us"] == 1 and stats["curr_us"] == 20
    assert (stats["min_us"], stats["max_us"], stats["mean_us"]) == (1, 20, 10.5)
    assert (stats["p5_us"], stats["median_us"], stats["p95_us"]) == (1, 10, 19)
    assert stats["std_us"] == pytest.approx(5.766281, abs=1e-6)  # sqrt((20**2 - 1) / 12)
    with pytest.raises(ValueError, match="no timing samples"):
        results.summarize([])


def test_make_record_fields():
    rec = record(threads=2)
    assert rec["schema"] == "ghostnet-bench/1" and rec["threads"] == 2 and rec["delegate"] == "xnnpack"
    assert rec["stats"]["median_us"] == 200 and rec["stats"]["init_us"] == 1500 and rec["stats"]["count"] == 3
    assert rec["warmup"]["count"] == 1 and rec["memory"]["peak_mb"] == 12
    assert rec["op_profile"] is None and rec["raw_output"] is None


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("stats"), "lacks stats"),
    (lambda r: r.update(schema="other/9"), "schema"),
    (lambda r: r.update(delegate="tpu"), "delegate"),
    (lambda r: r.update(threads=0), "threads"),
    (lambda r: r["stats"].update(median_us="fast"), "stats.median_us"),
    (lambda r: r["model"].pop("sha256"), "model lacks sha256"),
])
def test_validate_record_names_the_problem(change, message):
    bad = record()
    change(bad)
    with pytest.raises(ValueError, match=message):
        results.validate_record(bad)


def test_append_and_read_back(tmp_path):
    path = tmp_path / "r.jsonl"
    results.append_record(path, record(threads=1))
    results.append_record(path, record(threads=4))
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["threads"] == 4
    assert [r["threads"] for r in results.read_records(path)] == [1, 4]


def test_append_after_a_torn_line_keeps_the_new_record_whole(tmp_path):
    path = tmp_path / "r.jsonl"
    results.append_record(path, record())
    with open(path, "a") as handle:
        handle.write('{"schema": "ghostnet-be')  # a writer killed mid-line
    results.append_record(path, record(threads=3))
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["threads"] == 3
    with pytest.raises(ValueError, match=r"r.jsonl:2:"):
        results.read_records(path)


def test_an_invalid_record_is_never_written(tmp_path):
    path = tmp_path / "r.jsonl"
    bad = record()
    bad["threads"] = -1
    with pytest.raises(ValueError):
        results.append_record(path, bad)
    assert not path.exists()
