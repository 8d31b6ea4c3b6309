"""Reliability of ``ghostnet bench``: whole appends, readers that agree with the validator, no output over an
input, one run per run folder, bounded options, stopped runs that stop their children, one-line messages."""
import copy
import errno
import json
import os

import pytest

from android_bench import report, results

MODEL = {"path": "/m/tiny-int8.tflite", "sha256": "0" * 64, "size_bytes": 1000, "input_shape": [1, 32, 32, 3],
         "input_dtype": "int8", "input_quantization": None}


def local_record(name="tiny", precision="int8", median_us=1000.0):
    measured = {"count": 3, "first_us": median_us, "curr_us": median_us, "min_us": median_us,
                "max_us": median_us, "mean_us": median_us, "std_us": 0.0, "p5_us": median_us,
                "median_us": median_us, "p95_us": median_us}
    record = results.make_record(mode="local", model=MODEL, runtime={"name": "ai-edge-litert", "version": "x"},
                                 delegate="xnnpack", threads=1, cpu_mask=None,
                                 device={"hostname": "h", "cpu_model": "test cpu"},
                                 timings={"measured": measured, "init_us": 1.0, "first_inference_us": 2.0},
                                 date="2026-01-01T00:00:00+00:00")
    record["label"] = {"name": name, "precision": precision, "params": 1000, "macs": 2000, "top1": None}
    return record


def arm_record():
    return results.make_arm_record(
        model=MODEL, runtime={"name": "ai-edge-litert", "version": "x"}, delegate="xnnpack",
        device={"cpu": "cortex-a76", "emulator": "qemu-aarch64", "emulator_version": "7.2.22 (Debian)"},
        instructions={"count": 2, "per_inference": 1000, "min": 1000, "max": 1000, "first_inference": 1100,
                      "marker_overhead": 10, "dot_product_per_inference": 0, "i8mm_per_inference": 0},
        host_agreement={"bit_exact": True, "max_abs_diff": 0.0}, date="2026-01-01T00:00:00+00:00")


def write_lines(path, lines):
    path.write_bytes(b"".join(line if isinstance(line, bytes) else line.encode() + b"\n" for line in lines))


def one_error_line(err):
    lines = [line for line in err.strip().splitlines() if not line.startswith("ghostnet: warning:")
             and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("ghostnet: error:") and "Traceback" not in err, err
    return lines[0]


# 1. appends are whole records or nothing; the report reads every valid record and names the bad line


def test_a_disk_full_append_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    results.append_record(path, local_record())
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):  # the disk fills up in the middle of the line
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results.os, "write", half_then_full)
    with pytest.raises(OSError, match=r"cannot append a record to .*r.jsonl \(No space left on device\); the file "
                                      r"is left as it was") as caught:
        results.append_record(path, local_record())
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    monkeypatch.setattr(results.os, "write", lambda fd, data: real_write(fd, data[:10]))  # a short write
    with pytest.raises(OSError, match="cannot append"):
        results.append_record(path, local_record())
    assert path.read_bytes() == before


def test_report_reads_every_valid_record_and_names_the_bad_lines(tmp_path, cli):
    path = tmp_path / "r.jsonl"
    good = json.dumps(local_record("a"))
    write_lines(path, [good, good[:40], json.dumps(local_record("b")), b"\xff\xfe\x00binary\n",
                       json.dumps({**local_record("c"), "threads": True})])
    code, out, err = cli("bench", "report", path, "--out", tmp_path / "rep")
    assert code == 0, err
    warnings = err.strip().splitlines()
    assert len(warnings) == 3 and all(w.startswith("warning: ") for w in warnings)
    assert f"{path}:2: " in warnings[0] and f"{path}:4: not UTF-8 text" in warnings[1]
    assert f"{path}:5: benchmark record has threads True" in warnings[2]
    table = (tmp_path / "rep" / "report.md").read_text()
    assert "| a |" in table and "| b |" in table and "| c |" not in table


def test_report_of_a_binary_file_names_it(tmp_path, cli):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # a PNG, say
    code, _, err = cli("bench", "report", path, "--out", tmp_path / "rep")
    assert code == 2
    line = one_error_line(err)
    assert f"{path}: no benchmark records in the file" in line and f"{path}:1: not UTF-8 text" in line
    assert not (tmp_path / "rep").exists()


def test_many_bad_lines_are_counted_not_listed(tmp_path, cli):
    path = tmp_path / "r.jsonl"
    write_lines(path, [json.dumps(local_record())] + ["{"] * 20)
    code, _, err = cli("bench", "report", path, "--out", tmp_path / "rep")
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == report.MAX_WARNINGS + 1 and lines[-1] == f"warning: {path}: 15 more bad lines skipped"


# 2. no command overwrites its input


@pytest.mark.parametrize("name", ["report.csv", "report.md", "latency.png"])
def test_report_never_overwrites_its_input(tmp_path, cli, name):
    path = tmp_path / name
    results.append_record(path, local_record())
    before = path.read_bytes()
    code, _, err = cli("bench", "report", path)
    assert code == 2
    line = one_error_line(err)
    assert f"would overwrite its input {path}" in line and "give another --out folder" in line
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == [name]


# 4. the validator and the reader agree


@pytest.mark.parametrize("make, change, message", [
    (local_record, lambda r: r["model"].update(size_bytes="1000"), "model.size_bytes is '1000', expected an integer"),
    (local_record, lambda r: r["label"].update(params="5M"), "label.params is '5M', expected an integer or null"),
    (local_record, lambda r: r.update(device=None), "device is None, expected an object"),
    (local_record, lambda r: r.update(threads=True), "threads True"),
    (local_record, lambda r: r["label"].update(top1="73"), "label.top1 is '73'"),
    (local_record, lambda r: r["label"].update(converter=["tf"]), "label.converter is ['tf']"),
    (local_record, lambda r: r.update(warmup=3), "warmup is 3, expected an object or null"),
    (local_record, lambda r: r["runtime"].pop("name"), "runtime lacks name"),
    (local_record, lambda r: r.update(date=20260101), "date is 20260101"),
    (local_record, lambda r: r["stats"].update(count=True), "stats need count"),
    (arm_record, lambda r: r["device"].pop("cpu"), "device lacks cpu"),
    (arm_record, lambda r: r.update(device=None), "device is None"),
    (arm_record, lambda r: r["host_agreement"].update(max_abs_diff="0"), "host_agreement.max_abs_diff is '0'"),
    (arm_record, lambda r: r["instructions"].update(count=True), "instructions with count"),
])
def test_what_the_validator_passes_the_report_can_read(tmp_path, cli, make, change, message):
    record = make()
    results.validate_record(record)
    path = tmp_path / "r.jsonl"
    write_lines(path, [json.dumps(record)])
    code, _, err = cli("bench", "report", path, "--out", tmp_path / "ok")
    assert code == 0, err
    bad = copy.deepcopy(record)
    change(bad)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        results.validate_record(bad)
    write_lines(path, [json.dumps(bad)])
    code, _, err = cli("bench", "report", path, "--out", tmp_path / "bad")
    assert code == 2 and f"{path}:1: " in one_error_line(err)


# 8. report messages


def test_report_of_a_device_names_it(cli):
    code, _, err = cli("bench", "report", "/dev/zero")
    assert code == 2
    assert one_error_line(err) == ("ghostnet: error: results file: '/dev/zero' is not a regular file (a device, "
                                   "FIFO or socket); give a file")


def test_a_report_that_fails_writes_nothing(tmp_path, cli):
    path = tmp_path / "r.jsonl"
    results.append_record(path, local_record())
    code, _, err = cli("bench", "report", path, "--out", tmp_path / "rep", "--baseline", "absent")
    assert code == 2 and not (tmp_path / "rep").exists()


# 3. a run folder belongs to one run; 8. no empty run folder after a failure; --models '' refused


def test_compare_refuses_a_folder_with_another_runs_results(tmp_path, cli):
    run = tmp_path / "run"
    run.mkdir()
    results.append_record(run / "results.jsonl", local_record())
    before = (run / "results.jsonl").read_bytes()
    code, _, err = cli("bench", "compare", "--models", "ghostnet_050", "--input-size", "32", "--out", run,
                       "--cache-dir", tmp_path / "cache", "--no-arm")
    assert code == 2
    assert one_error_line(err) == (f"ghostnet: error: --out: {run} already holds the results of another run "
                                   f"({run / 'results.jsonl'}); give a new folder (or remove that one) so that each "
                                   "report shows one run")
    assert (run / "results.jsonl").read_bytes() == before and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("argv, message", [
    (["--models", ""], "--models: expected zoo model names like ghostnet_100, mobilenet_v3_large_075, got ''"),
    (["--models", " , "], "got ' , '"),
    (["--rounds", "1000000000"], "--rounds: expected an integer from 1 to 1,000"),
    (["--runs", "1000000000"], "--runs: expected an integer from 1 to 100,000"),
    (["--warmup", "100000000"], "--warmup: expected an integer from 0 to 10,000"),
    (["--jobs", "100000"], "--jobs: expected an integer from 1 to 64"),
    (["--cooldown-s", "nan"], "--cooldown-s: expected seconds >= 0"),
    (["--thermal-poll-s", "0"], "--thermal-poll-s: expected seconds > 0"),
    (["--weights", "/dev/zero", "--width", "0.5"], "--weights: '/dev/zero' is not a regular file"),
])
def test_compare_refuses_bad_options_before_any_work(tmp_path, cli, argv, message):
    code, _, err = cli("bench", "compare", "--out", tmp_path / "run", "--cache-dir", tmp_path / "cache", "--no-arm",
                       *argv)
    assert code == 2 and message in err and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command, argv, message", [
    ("local", ["--runs", "1000000000"], "--runs: expected an integer from 1 to 100,000"),
    ("local", ["--warmup", "-1"], "--warmup: expected an integer from 0 to 10,000"),
    ("adb", ["--benchmark-binary", "b", "--runs", "0"], "--runs: expected an integer from 1 to 100,000"),
    ("adb", ["--benchmark-binary", "b", "--max-thermal-wait-s", "-5"], "--max-thermal-wait-s: expected seconds"),
    ("arm", ["--runs", "1000000000"], "--runs: expected an integer from 1 to 100, got '1000000000'"),
])
def test_run_counts_are_bounded(cli, command, argv, message):
    code, _, err = cli("bench", command, "--model", "m.tflite", *argv)
    assert code == 2 and message in err, err


def test_compare_leaves_no_empty_run_folder_when_it_fails(tmp_path, cli):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    run = tmp_path / "runs" / "run"
    code, _, err = cli("bench", "compare", "--models", "ghostnet_050", "--width", "0.5", "--weights", bad,
                       "--input-size", "32", "--out", run, "--cache-dir", tmp_path / "cache", "--no-arm")
    assert code == 2 and "Traceback" not in err, err
    assert not run.exists()


# 8. the compare cache verifies its entries and evicts broken ones


class FakeConversion:
    def __init__(self, path):
        self.path = path

    def to_json(self):
        return {"seconds": {"total": 1.0}, "path": self.path}


def test_a_damaged_cache_entry_is_evicted_and_converted_again(tmp_path, monkeypatch):
    from android_bench import compare, zoo

    cache, said = tmp_path / "cache", []
    monkeypatch.setattr(compare, "prepare_source", lambda entry, size, cache_dir, options, log: {
        "keras_model": "k.keras", "params": 1, "macs": 1, "weights": "random"})

    def convert(work, jobs):  # what a worker process leaves: the file and its report
        for entry, spec, _, path in work:
            with open(path, "wb") as handle:
                handle.write(b"TFL3 model of " + path.encode())
            with open(compare._report_path(path), "w") as handle:
                json.dump(FakeConversion(path).to_json(), handle)
            yield (entry, spec.quantize), FakeConversion(path)

    monkeypatch.setattr(compare, "_conversions", convert)
    entries = [zoo.ZOO["ghostnet_050"]]
    options = {"eval_count": 4, "calibration_steps": 2, "weights": None, "weights_sha256": None}

    def run():
        said.clear()
        return compare.convert_zoo(entries, (32, 32), str(cache), options, log=said.append)

    first = run()
    assert "2 to convert" in said[0]
    run()
    assert "0 to convert" in said[0]
    int8 = first[("ghostnet_050", "int8")]["path"]
    with open(int8, "r+b") as handle:  # a bit flipped on disk
        handle.seek(3)
        handle.write(b"X")
    again = run()
    assert any("the cached int8 conversion of ghostnet_050" in m and "removed it" in m for m in said), said
    assert "1 to convert" in " ".join(said) and again[("ghostnet_050", "int8")]["report"]["path"] == int8
    with open(compare._report_path(int8), "w") as handle:  # a damaged report
        handle.write("{")
    run()
    assert "1 to convert" in " ".join(said)
    assert run()[("ghostnet_050", "int8")]["report"]["seconds"] == {"total": 1.0} and "0 to convert" in said[0]


# 5.-7. bench arm: stopped runs stop their guests, progress, one input, --per-block, a read-only cache

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

GHOSTNET = str(Path(sys.executable).with_name("ghostnet"))


def edited_model(source, target, edit):
    """A copy of a .tflite file with its one subgraph changed by ``edit(subgraph)``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(Path(source).read_bytes()), 0)
    edit(model.subgraphs[0])
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(target).write_bytes(bytes(builder.Output()))
    return target


def processes_mentioning(text):
    """The pids whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_bench_arm_stops_its_guest_and_cleans_up(arm_setup, models, tmp_path, signum, status):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cli = subprocess.Popen([GHOSTNET, "bench", "arm", "--model", str(models["int8"]), "--runs", "100"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not [pid for pid in processes_mentioning(str(tmp)) if pid != cli.pid]:  # the guest is running
        assert cli.poll() is None and time.monotonic() < deadline, cli.communicate()
        time.sleep(0.05)
    os.kill(cli.pid, signum)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == status, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] in ("ghostnet: terminated", "ghostnet: interrupted")
    assert processes_mentioning(str(tmp)) == []
    assert os.listdir(tmp) == []


def test_long_emulated_runs_report_progress(arm_setup, models, monkeypatch):
    from android_bench.arm import emulator
    from android_bench.runner import RunConfig

    monkeypatch.setattr(emulator, "PROGRESS_S", 0.2)
    said = []
    record = emulator.Emulator.load(log=said.append).measure(str(models["int8"]), RunConfig(runs=100))
    assert record["instructions"]["count"] == 100
    progress = [m for m in said if m.startswith("arm: cortex-a76: inference ")]
    assert progress and all(m.split()[3].endswith("/101") and m.endswith(" s elapsed)") for m in progress), said


def test_a_silent_guest_is_stopped(arm_setup, models, monkeypatch):
    from android_bench.arm import emulator

    emu = emulator.Emulator.load()
    prefix, _ = emu.guest_root()
    started = time.monotonic()
    with pytest.raises(emulator.ArmError, match="made no progress for 1 s"):
        emu.run_guest(["-c", "import time; time.sleep(60)"], prefix, timeout=1)
    assert time.monotonic() - started < 30


def test_a_model_with_two_inputs_is_refused(arm_setup, models, tmp_path, cli):
    import numpy as np

    def second_input(graph):
        twin = copy.deepcopy(graph.tensors[graph.inputs[0]])
        twin.name = b"second_image"
        graph.tensors.append(twin)
        graph.inputs = np.append(graph.inputs, len(graph.tensors) - 1).astype(np.int32)

    two = edited_model(models["float"], tmp_path / "two.tflite", second_input)
    out = tmp_path / "arm.jsonl"
    code, _, err = cli("bench", "arm", "--model", two, "--json-lines", out)
    assert code == 2
    assert one_error_line(err) == (f"ghostnet: error: model {two} has 2 inputs; bench arm feeds a model one input "
                                   "(an image): give a model with a single input")
    assert not out.exists()


def test_per_block_on_a_float16_file_says_what_it_needs(arm_setup, models, tmp_path, cli):
    from ai_edge_litert import schema_py_generated as schema

    def float16_weight(graph):
        weight = copy.deepcopy(graph.tensors[graph.inputs[0]])
        weight.name, weight.type = b"float16_weight", schema.TensorType.FLOAT16
        graph.tensors.append(weight)

    half = edited_model(models["float"], tmp_path / "half.tflite", float16_weight)
    code, _, err = cli("bench", "arm", "--model", half, "--per-block")
    assert code == 2
    assert one_error_line(err) == (f"ghostnet: error: {half}: --per-block needs an int8 or float32 file, and this "
                                   "one has float16 weights; count it without --per-block")


def test_a_read_only_cache_is_named(arm_setup, monkeypatch, tmp_path):
    """Root writes anywhere, so the refusal of the folder is injected (EACCES from the staging folder)."""
    import dataclasses

    from android_bench.arm import emulator

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(kwargs["dir"], ".cortex-a35-x1y2"))

    monkeypatch.setattr(emulator.tempfile, "mkdtemp", read_only)
    fresh = dataclasses.replace(arm_setup, layout=dataclasses.replace(arm_setup.layout, cores=str(tmp_path / "cores")))
    with pytest.raises(emulator.ArmError) as caught:
        fresh.on("cortex-a35").guest_root()
    assert str(caught.value).startswith(f"--cache: the emulator's cache {arm_setup.layout.root} is not writable "
                                        "(Permission denied)") and ".cortex-a35-" not in str(caught.value)


def test_a_damaged_cached_source_is_evicted_and_built_again(tmp_path, monkeypatch):
    import types

    import ghostnet_tf
    from android_bench import compare

    built = []

    class FakeModel:
        def save(self, path):
            built.append(path)
            Path(path).write_bytes(b"keras zip")

    entry = types.SimpleNamespace(name="fake", family="fake", width=1.0, build=lambda size, weights: FakeModel())
    monkeypatch.setattr(ghostnet_tf, "profile", lambda model: {"params": 1, "macs": 2})
    options = {"weights": None, "weights_sha256": None}
    said = []
    meta = compare.prepare_source(entry, (32, 32), str(tmp_path), options, said.append)
    assert compare.prepare_source(entry, (32, 32), str(tmp_path), options, said.append) == meta
    assert len(built) == 1 and said == []
    Path(meta["keras_model"][: -len(".keras")] + ".json").write_text('{"keras_model": ')  # damaged
    assert compare.prepare_source(entry, (32, 32), str(tmp_path), options, said.append) == meta
    assert len(built) == 2 and len(said) == 1 and "the cached Keras model of fake" in said[0]


def children_of(pid):
    """The pids whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return found


@pytest.mark.slow
def test_a_terminated_compare_stops_its_conversion_workers(tmp_path):
    """SIGTERM while the zoo converts: the worker processes end too, and no run folder is left."""
    run = tmp_path / "run"
    cli = subprocess.Popen([GHOSTNET, "bench", "compare", "--models", "ghostnet_050", "--input-size", "32",
                            "--calibration-steps", "2", "--out", str(run), "--cache-dir", str(tmp_path / "cache"),
                            "--no-arm"], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, workers = time.monotonic() + 300, []
    while not workers:
        workers = [pid for pid in children_of(cli.pid)
                   if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert cli.poll() is None and time.monotonic() < deadline, cli.communicate()
        time.sleep(0.1)
    os.kill(cli.pid, signal.SIGTERM)
    _, err = cli.communicate(timeout=120)
    assert cli.returncode == 143 and "Traceback" not in err, err
    assert [pid for pid in workers if os.path.exists(f"/proc/{pid}")] == []
    assert not run.exists()


def test_setup_into_a_read_only_cache_names_the_cache(tmp_path, monkeypatch, cli):
    """Injected EACCES (root writes anywhere): the message names the --cache folder, not its work folder."""
    cache, real_makedirs = tmp_path / "arm", os.makedirs
    cache.mkdir()

    def read_only(path, *args, **kwargs):
        if os.fspath(path).startswith(str(cache)):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", read_only)
    code, _, err = cli("bench", "arm", "--setup", "--cache", cache)
    assert code == 2
    assert one_error_line(err) == (f"ghostnet: error: cannot write into the cache folder {cache} (Permission denied); "
                                   "give a writable --cache (or set GHOSTNET_ARM_CACHE to one)")
