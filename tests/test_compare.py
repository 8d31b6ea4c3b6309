"""``bench compare`` on a tiny zoo subset (real conversions, real LiteRT, cache reuse, a stand-in phone) and
``bench report`` on a fixed results file whose expected figures are worked out by hand."""
import csv
import json
import os

import numpy as np
import pytest

from android_bench import compare, report, results, zoo
from fake_adb.phone import make_elf
from ghostnet_tf.cli import main

TINY_ZOO = ["--models", "ghostnet_050,mobilenet_v3_small_100", "--input-size", "32", "--calibration-steps", "2"]
# Latency only here; the emulated ARM run (test_compare_on_emulated_cores_reports_instructions) reuses the files.
TINY = [*TINY_ZOO, "--runs", "3", "--warmup", "1", "--no-arm"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One compare run over two models; its cache is reused by the tests below, some of which add files of
    their own to it."""
    root = tmp_path_factory.mktemp("compare")
    cache, out = root / "cache", root / "run1"
    code = main(["bench", "compare", *TINY, "--rounds", "2", "--cache-dir", str(cache), "--out", str(out)])
    return code, cache, out


@pytest.mark.slow
def test_compare_converts_benchmarks_interleaved_and_reports(first_run):
    code, cache, out = first_run
    assert code == 0
    records = results.read_records(out / "results.jsonl")
    order = [(r["label"]["round"], r["label"]["name"], r["label"]["precision"]) for r in records]
    # Round by round, every model and precision once per round (A B C D A B C D).
    assert order == [(rnd, name, precision) for rnd in (0, 1)
                     for name in ("ghostnet_050", "mobilenet_v3_small_100") for precision in ("float32", "int8")]
    int8 = [r for r in records if r["label"]["precision"] == "int8"]
    assert all(r["model"]["input_dtype"] == "uint8" and r["model"]["input_shape"] == [1, 32, 32, 3] for r in int8)
    assert all(r["stats"]["count"] == 3 and r["threads"] == 1 and r["mode"] == "local" for r in records)
    ghost = next(r for r in records if r["label"]["name"] == "ghostnet_050")
    assert ghost["label"]["params"] == 2_587_292 and ghost["label"]["top1"] == 66.2
    int8_ghost = next(r for r in int8 if r["label"]["name"] == "ghostnet_050")
    int8_report = json.loads(open(int8_ghost["model"]["path"][:-len(".tflite")] + ".report.json").read())
    assert int8_ghost["label"]["top1_agreement_pct"] == int8_report["fidelity"]["top1_agreement_pct"]
    assert int8_ghost["label"]["conversion_s"] == int8_report["seconds"]["total"]
    files = {r["model"]["path"] for r in records}  # four files in the cache, each measured twice
    assert len(files) == 4 and all(os.path.dirname(path) == str(cache) for path in files)
    table, frontier = (out / "report.md").read_text().split("## Frontier")
    assert table.count("| ghostnet_050 |") == 2 and table.count("| mobilenet_v3_small_100 |") == 2
    assert frontier.count("| ghostnet_050 |") == 1 and frontier.count("| mobilenet_v3_small_100 |") == 1
    for name in ("latency.png", "accuracy_latency.png", "frontier.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_second_run_converts_nothing(first_run, tmp_path, capsys):
    _, cache, _ = first_run
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.tflite")}  # whatever other tests added too
    capsys.readouterr()
    assert main(["bench", "compare", *TINY, "--rounds", "1", "--cache-dir", str(cache), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "4 already converted" in err and err.startswith("compare: random weights (no --weights)")
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.tflite")} == before
    assert len(results.read_records(tmp_path / "results.jsonl")) == 4


@pytest.mark.slow
def test_compare_on_a_phone(first_run, tmp_path, phone):
    _, cache, _ = first_run
    phone()
    binary = make_elf(tmp_path / "benchmark_model")
    out = tmp_path / "phone"
    assert main(["bench", "compare", *TINY, "--rounds", "1", "--cache-dir", str(cache), "--out", str(out),
                 "--target", "adb", "--benchmark-binary", str(binary), "--cooldown-s", "0"]) == 0
    records = results.read_records(out / "results.jsonl")
    assert [r["mode"] for r in records] == ["adb"] * 4 and records[0]["device"]["model"] == "Pixel Fake"
    assert "Google Pixel Fake Tensor G9" in (out / "report.md").read_text()


@pytest.mark.slow
def test_compare_on_emulated_cores_reports_instructions(arm_setup, first_run, tmp_path, capsys):
    _, cache, _ = first_run
    out = tmp_path / "run"
    assert main(["bench", "compare", "--target", "arm", "--cpu", "cortex-a76", *TINY_ZOO,
                 "--cache-dir", str(cache), "--out", str(out)]) == 0
    records = results.read_records(out / "results.jsonl")
    assert [(r["label"]["name"], r["label"]["precision"]) for r in records] == [
        ("ghostnet_050", "float32"), ("ghostnet_050", "int8"),
        ("mobilenet_v3_small_100", "float32"), ("mobilenet_v3_small_100", "int8")]
    assert all(r["mode"] == "arm-emulated" and r["device"]["cpu"] == "cortex-a76" for r in records)
    assert all(r["host_agreement"]["bit_exact"] for r in records if r["label"]["precision"] == "int8")
    count = {(r["label"]["name"], r["label"]["precision"]): r["instructions"]["per_inference"] for r in records}
    table = (out / "report.md").read_text()
    assert "### emulated cortex-a76 (qemu-aarch64 7." in table and "not milliseconds" in table
    ghost_int8 = next(line for line in table.splitlines() if line.startswith("| ghostnet_050 | int8 |"))
    cells = [c.strip() for c in ghost_int8.split("|")[1:-1]]
    assert cells[5] == f"{count[('ghostnet_050', 'int8')] / 1e6:.2f}"
    assert cells[8] == f"{count[('ghostnet_050', 'int8')] / count[('ghostnet_050', 'float32')]:.2f}"
    assert cells[10] == "bit-exact" and "median (ms)" not in table
    for name in ("instructions_cortex_a76.png", "accuracy_instructions_cortex_a76.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "instructions_m" not in (out / "instructions.csv").read_text().splitlines()[0]
    assert "4 already converted" in capsys.readouterr().err  # the files of the latency run


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
                    "frontier_alpha_test_cpu.png", "frontier_beta_test_cpu.png",
                    "latency_alpha_test_cpu.png", "latency_beta_test_cpu.png"]


def test_report_says_when_where_and_how_it_was_measured(results_file, tmp_path, cli):
    out = tmp_path / "report"
    code, _, err = cli("bench", "report", results_file, "--out", out)
    assert code == 0, err
    head = (out / "report.md").read_text().split("\n### ")[0]
    assert head.startswith("# Benchmark report\n")
    assert f"`ghostnet bench report {results_file} --out {out}`" in head  # the command line
    assert "- machines: alpha (test cpu); beta (test cpu)" in head and "- runtimes: ai-edge-litert x" in head
    assert "- latency: 10 timed runs after 0 warm-up per round, 1/3 round(s) per configuration" in head
    date = head.split("- written ")[1][:16]
    assert date[:4].isdigit() and date[4] == "-" and "UTC by ghostnet-tf" in head


def test_models_outside_the_zoo_get_no_empty_accuracy_plot(tmp_path, cli):
    """No published top-1, nothing to plot: the latency plot only, and no matplotlib warning on stderr."""
    path = tmp_path / "results.jsonl"
    for precision in ("float32", "int8"):
        record = _record("my_model", precision, 5000, 6000)
        record["label"]["top1"] = None
        results.append_record(path, record)
    code, _, err = cli("bench", "report", path, "--out", tmp_path / "report")
    assert code == 0 and err == ""
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == ["latency.png"]


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


def test_report_missing_file_or_folder(tmp_path, cli_error):
    assert "does not exist" in cli_error("bench", "report", tmp_path / "nope.jsonl")
    assert f"{str(tmp_path)!r} is a folder; give the results file in it" in cli_error("bench", "report", tmp_path)


def test_report_baseline(results_file, tmp_path, cli, cli_error):
    out = tmp_path / "report"
    code, _, err = cli("bench", "report", results_file, "--out", out, "--baseline", "ghostnet_100")
    assert code == 0, err
    rows = {(r["model"], r["precision"]): r for r in csv.DictReader((out / "report.csv").open())
            if r["device"].startswith("alpha")}
    assert float(rows[("mobilenet_v3_large_075", "int8")]["vs_baseline"]) == 0.5  # 5 ms / GhostNet's 10 ms
    assert float(rows[("mobilenet_v3_large_075", "float32")]["vs_baseline"]) == 0.8  # 16 / 20
    assert "| vs ghostnet_100 |" in (out / "report.md").read_text()
    message = cli_error("bench", "report", results_file, "--out", tmp_path / "other", "--baseline", "resnet50")
    assert message == ("ghostnet: error: --baseline: 'resnet50' is not among the measured models "
                       "(ghostnet_100, mobilenet_v3_large_075)")
    assert not (tmp_path / "other").exists()


def test_accuracy_plot_labels_do_not_overlap():
    """The make-run case: GhostNet 1.0x float32 and MobileNetV3-Large 0.75 at nearly the same point."""
    rows = [{"model": m, "precision": p, "threads": 1, "median_ms": ms, "top1": top1}
            for m, p, ms, top1 in [("ghostnet_100", "float32", 10.0, 73.9), ("ghostnet_100", "int8", 6.0, 73.9),
                                   ("mobilenet_v3_large_075", "float32", 10.2, 73.3),
                                   ("mobilenet_v3_large_075", "int8", 5.9, 73.3),
                                   ("ghostnet_050", "float32", 4.0, 66.2), ("ghostnet_050", "int8", 3.0, 66.2),
                                   ("mobilenet_v3_small_100", "float32", 4.1, 67.4),
                                   ("mobilenet_v3_small_100", "int8", 3.1, 67.4)]]
    figure = report.accuracy_figure("test cpu", rows, report.Catalog.of(zoo.ZOO.values()))
    renderer = figure.canvas.get_renderer()
    axes = figure.axes[0]
    boxes = {text.get_text(): text.get_window_extent(renderer) for text in axes.texts}
    assert len(boxes) == 8 and "GhostNet 1.0x float32" in boxes and "MobileNetV3-Large 0.75 float32" in boxes
    overlapping = [(a, b) for i, a in enumerate(boxes) for b in list(boxes)[i + 1:] if boxes[a].overlaps(boxes[b])]
    assert overlapping == []


def test_conversion_key_covers_every_option():
    entry = zoo.ZOO["ghostnet_050"]
    options = {"eval_count": 16, "calibration_steps": 100, "weights": None, "weights_sha256": None}
    key = compare.conversion_key(entry, (32, 32), "int8", options)
    assert compare.conversion_key(entry, (32, 32), "int8", {**options, "eval_count": 4}) != key
    assert compare.conversion_key(entry, (32, 32), "int8", {**options, "calibration_steps": 8}) != key
    assert compare.conversion_key(entry, (32, 32), "float32", options) != key
    assert compare.conversion_key(entry, (64, 64), "int8", options) != key
    # The weights of a GhostNet checkpoint change GhostNet entries only.
    with_weights = {**options, "weights": "w.safetensors", "weights_sha256": "ab" * 32}
    assert compare.conversion_key(entry, (32, 32), "int8", with_weights) != key
    mobilenet = zoo.ZOO["mobilenet_v3_small_100"]
    assert compare.conversion_key(mobilenet, (32, 32), "int8", with_weights) == \
        compare.conversion_key(mobilenet, (32, 32), "int8", options)


def _converted_names(cache):
    return {p.name for p in cache.glob("*.tflite")}


@pytest.mark.slow
def test_changed_option_reconverts(first_run, tmp_path, capsys):
    _, cache, _ = first_run
    one = ["--models", "mobilenet_v3_small_100", "--input-size", "32", "--runs", "2", "--warmup", "0",
           "--rounds", "1", "--cache-dir", str(cache), "--no-arm"]
    before = _converted_names(cache)
    capsys.readouterr()
    assert main(["bench", "compare", *one, "--calibration-steps", "3", "--out", str(tmp_path / "a")]) == 0
    assert "1 already converted" in capsys.readouterr().err  # float32 reused, int8 converted again
    added = _converted_names(cache) - before
    assert len(added) == 1 and next(iter(added)).startswith("mobilenet_v3_small_100-int8-")


def test_changed_source_changes_every_key(tmp_path, monkeypatch):
    """A change to the converter's or the model's source gives every model and file a new key, so all are
    converted again (the run above shows that a new key means a new conversion)."""
    entry = zoo.ZOO["mobilenet_v3_small_100"]
    options = {"eval_count": 16, "calibration_steps": 2, "weights": None, "weights_sha256": None}
    keys = [compare.conversion_key(entry, (32, 32), p, options) for p in compare.PRECISIONS]
    changed = tmp_path / "changed_source.py"
    changed.write_text("VALUE = 2\n")
    monkeypatch.setattr(compare, "SOURCE_FILES", [*compare.SOURCE_FILES, changed])
    again = [compare.conversion_key(entry, (32, 32), p, options) for p in compare.PRECISIONS]
    assert not set(keys) & set(again)
    changed.write_text("VALUE = 3\n")
    assert not set(again) & {compare.conversion_key(entry, (32, 32), p, options) for p in compare.PRECISIONS}


@pytest.mark.slow
def test_compare_weights_go_to_the_ghostnet_entry_only(first_run, tmp_path, capsys):
    """The README's `--weights CHECKPOINT --width W` with the MobileNets in the run."""
    import keras
    from safetensors.numpy import save_file

    from ghostnet_tf import GhostNet
    from ghostnet_tf.weights import state_dict_from_model

    _, cache, _ = first_run
    state = {k: np.ascontiguousarray(v)  # safetensors stores the buffer as laid out
             for k, v in state_dict_from_model(GhostNet(width=0.5, input_shape=(32, 32, 3))).items()}
    save_file(state, str(tmp_path / "ghostnet_050.safetensors"))
    capsys.readouterr()
    assert main(["bench", "compare", *TINY, "--width", "0.5", "--weights", str(tmp_path / "ghostnet_050.safetensors"),
                 "--rounds", "1", "--cache-dir", str(cache), "--out", str(tmp_path / "run")]) == 0
    # The MobileNet files of the first run are reused (the checkpoint is not theirs); GhostNet is rebuilt.
    assert "2 already converted" in capsys.readouterr().err
    newest = max(cache.glob("ghostnet_050-*.keras"), key=lambda p: p.stat().st_mtime_ns)
    loaded = state_dict_from_model(keras.saving.load_model(newest, compile=False))
    assert [k for k in state if not (loaded[k] == state[k]).all()] == []
    assert len(results.read_records(tmp_path / "run" / "results.jsonl")) == 4


@pytest.mark.parametrize("argv, message", [
    (["--weights", "{ckpt}"], "--weights: a checkpoint fits one GhostNet width, but 3 GhostNet entries are selected"),
    (["--target", "adb"], "--target adb needs --benchmark-binary PATH"),
    (["--out", "{file}"], "is a file; give a folder"),
])
def test_compare_refuses_before_any_work(tmp_path, cli_error, argv, message):
    (tmp_path / "ckpt.safetensors").write_bytes(b"x")
    (tmp_path / "file").write_text("")
    fill = {"ckpt": tmp_path / "ckpt.safetensors", "file": tmp_path / "file"}
    argv = [a.format(**fill) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    assert message in cli_error("bench", "compare", "--cache-dir", tmp_path / "cache", *argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors", "file"]


def test_compare_unknown_model(tmp_path, capsys):
    assert main(["bench", "compare", "--models", "resnet50", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "unknown model resnet50" in err and "ghostnet_100" in err
    assert not (tmp_path / "c").exists()
