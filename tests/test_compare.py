"""``bench compare`` on a tiny zoo subset (real conversions, real LiteRT, cache reuse, a stand-in phone) and
``bench report`` on a fixed results file whose expected figures are worked out by hand."""
import csv
import os

import pytest

from android_bench import results
from fake_adb.phone import make_elf, make_phone
from ghostnet_tf.cli import main

TINY = ["--models", "ghostnet_050,mobilenet_v3_small_100", "--input-size", "32", "--runs", "3", "--warmup", "1",
        "--calibration-steps", "2"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One compare run over two models; its cache is reused by the tests below."""
    root = tmp_path_factory.mktemp("compare")
    cache, out = root / "cache", root / "run1"
    code = main(["bench", "compare", *TINY, "--rounds", "2", "--cache-dir", str(cache), "--out", str(out)])
    return code, cache, out


def test_compare_converts_benchmarks_interleaved_and_reports(first_run):
    code, cache, out = first_run
    assert code == 0
    records = results.read_records(out / "results.jsonl")
    order = [(r["label"]["round"], r["label"]["name"], r["label"]["precision"]) for r in records]
    # Round by round, every model and precision once per round (A B C D A B C D).
    assert order == [(rnd, name, precision) for rnd in (0, 1)
                     for name in ("ghostnet_050", "mobilenet_v3_small_100") for precision in ("float32", "int8")]
    int8 = [r for r in records if r["label"]["precision"] == "int8"]
    assert all(r["model"]["input_dtype"] == "int8" and r["model"]["input_shape"] == [1, 32, 32, 3] for r in int8)
    assert all(r["stats"]["count"] == 3 and r["threads"] == 1 and r["mode"] == "local" for r in records)
    ghost = next(r for r in records if r["label"]["name"] == "ghostnet_050")
    assert ghost["label"]["params"] == 2_587_292 and ghost["label"]["top1"] == 66.2
    assert 0 <= ghost["label"]["top1_agreement_pct"] <= 100 and ghost["label"]["conversion_s"] > 0
    assert len(list(cache.glob("*.tflite"))) == 4
    table = (out / "report.md").read_text()
    assert table.count("| ghostnet_050 |") == 2 and table.count("| mobilenet_v3_small_100 |") == 2
    for name in ("latency.png", "accuracy_latency.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_run_converts_nothing(first_run, tmp_path, capsys):
    _, cache, _ = first_run
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.tflite")}
    capsys.readouterr()
    assert main(["bench", "compare", *TINY, "--rounds", "1", "--cache-dir", str(cache), "--out", str(tmp_path)]) == 0
    assert "4 already converted" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.tflite")} == before
    assert len(results.read_records(tmp_path / "results.jsonl")) == 4


def test_compare_on_a_phone(first_run, tmp_path, monkeypatch):
    _, cache, _ = first_run
    env = make_phone(tmp_path)
    monkeypatch.setenv("PATH", env.pop("BIN") + os.pathsep + os.environ["PATH"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    binary = make_elf(tmp_path / "benchmark_model")
    out = tmp_path / "phone"
    assert main(["bench", "compare", *TINY, "--rounds", "1", "--cache-dir", str(cache), "--out", str(out),
                 "--target", "adb", "--benchmark-binary", str(binary), "--cooldown-s", "0"]) == 0
    records = results.read_records(out / "results.jsonl")
    assert [r["mode"] for r in records] == ["adb"] * 4 and records[0]["device"]["model"] == "Pixel Fake"
    assert "Google Pixel Fake Tensor G9" in (out / "report.md").read_text()


def _record(name, precision, median_us, p95_us, device="alpha", size=1000):
    model = {"path": f"/m/{name}-{precision}.tflite", "sha256": "0" * 64, "size_bytes": size,
             "input_shape": [1, 224, 224, 3], "input_dtype": "int8" if precision == "int8" else "float32"}
    measured = {"count": 10, "first_us": median_us, "curr_us": median_us, "min_us": median_us, "max_us": p95_us,
                "mean_us": median_us, "std_us": 1.0, "p5_us": median_us, "median_us": median_us, "p95_us": p95_us}
    record = results.make_record(mode="local", model=model, runtime={"name": "ai-edge-litert", "version": "x"},
                                 delegate="xnnpack", threads=1, cpu_mask=None,
                                 device={"hostname": device, "cpu_model": "test cpu"},
                                 timings={"measured": measured, "init_us": 1.0, "first_inference_us": 2.0})
    record["label"] = {"name": name, "precision": precision, "params": 5_000_000, "macs": 141_000_000,
                       "top1": 73.9}
    return record


@pytest.fixture
def results_file(tmp_path):
    path = tmp_path / "results.jsonl"
    rows = [("ghostnet_100", "float32", 20000, 22000), ("ghostnet_100", "int8", 8000, 9000),
            ("ghostnet_100", "int8", 12000, 13000), ("ghostnet_100", "int8", 10000, 11000),  # three rounds
            ("mobilenet_v3_large_075", "float32", 16000, 17000), ("mobilenet_v3_large_075", "int8", 5000, 6000)]
    for row in rows:
        results.append_record(path, _record(*row))
    results.append_record(path, _record("ghostnet_100", "int8", 40000, 41000, device="beta"))
    return path


def test_report_from_fixed_results(results_file, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["bench", "report", str(results_file), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "report.csv").open()))
    alpha = {(r["model"], r["precision"]): r for r in rows if r["device"].startswith("alpha")}
    ghost_int8 = alpha[("ghostnet_100", "int8")]
    assert float(ghost_int8["median_ms"]) == 10.0 and ghost_int8["rounds"] == "3"  # median of 8, 12, 10 ms
    assert float(ghost_int8["p95_ms"]) == 11.0
    assert float(ghost_int8["int8_speedup"]) == 2.0  # 20 ms float32 / 10 ms int8
    assert float(ghost_int8["vs_baseline"]) == 2.0  # 10 ms / MobileNetV3-Large 0.75 int8 5 ms
    assert float(alpha[("ghostnet_100", "float32")]["vs_baseline"]) == 1.25  # 20 / 16
    assert {r["device"] for r in rows} == {"alpha (test cpu)", "beta (test cpu)"}
    text = (out / "report.md").read_text()
    assert "### alpha (test cpu)" in text and "### beta (test cpu)" in text
    assert "| ghostnet_100 | int8 | 1 | 5.00 | 141.0 | 0.00 | 10.00 | 11.00 | 2.00 | 2.00 |" in text
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["accuracy_latency_alpha_test_cpu.png", "accuracy_latency_beta_test_cpu.png",
                    "latency_alpha_test_cpu.png", "latency_beta_test_cpu.png"]


@pytest.mark.parametrize("content,message", [
    ("", "no benchmark records"),
    ("{not json\n", "line 1"),
    ('{"schema": "ghostnet-bench/1"}\n', "lacks"),
])
def test_report_bad_results_file(tmp_path, capsys, content, message):
    path = tmp_path / "results.jsonl"
    path.write_text(content)
    assert main(["bench", "report", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "report.md").exists()


def test_report_missing_file(tmp_path, capsys):
    assert main(["bench", "report", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_compare_unknown_model(tmp_path, capsys):
    assert main(["bench", "compare", "--models", "resnet50", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "unknown model resnet50" in err and "ghostnet_100" in err
    assert not (tmp_path / "c").exists()
