"""``bench adb`` end to end against a stand-in adb (tests/fake_adb) whose benchmark_model measures the model
with the real LiteRT runtime, plus every error path of the issue."""
import os
import signal
import subprocess
import sys
import time

import pytest

from android_bench import device, results
from fake_adb.phone import calls, make_elf
from ghostnet_tf.cli import main

FAST = ["--runs", "5", "--warmup", "1", "--cooldown-s", "0", "--thermal-poll-s", "0.01"]


def bench(model, binary, *extra):
    return main(["bench", "adb", "--model", str(model), "--benchmark-binary", str(binary), *FAST, *extra])


def test_end_to_end(models, binary, phone, tmp_path, capsys):
    root = phone(thermal=(2, 1, 0))
    out = tmp_path / "phone.jsonl"
    assert bench(models["int8"], binary, "--threads", "1,2", "--op-profile", "--json-lines", str(out)) == 0
    records = results.read_records(out)
    assert [(r["threads"], r["delegate"], r["cpu_mask"]) for r in records] == [(1, "xnnpack", "f0"), (2, "xnnpack", "f0")]
    first = records[0]
    assert first["mode"] == "adb" and first["runtime"]["name"] == "benchmark_model"
    assert first["model"]["input_dtype"] == "int8" and first["model"]["input_shape"] == [1, 32, 32, 3]
    facts = first["device"]
    assert (facts["model"], facts["soc"], facts["android_version"], facts["abi"]) == \
        ("Pixel Fake", "Tensor G9", "14", "arm64-v8a")
    assert facts["cores"] == 8 and facts["big_cores"] == [4, 5, 6, 7] and facts["serial"] == "FAKE123"
    stats = first["stats"]
    assert stats["count"] == 5 and first["warmup"]["count"] == 1
    assert 0 < stats["min_us"] <= stats["p5_us"] <= stats["median_us"] <= stats["p95_us"] <= stats["max_us"]
    assert stats["init_us"] > 0 and first["memory"]["peak_mb"] > 0
    assert "Inference timings in us" in first["raw_output"]
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= {op["node_type"] for op in first["op_profile"]}
    # Thermal status 2 then 1 then 0: the first configuration waited, the second found the phone cool.
    assert first["thermal"]["status_before"] == 2 and first["thermal"]["cool"] is True
    assert records[1]["thermal"]["status_before"] == 0
    assert "thermal status 2: waiting" in capsys.readouterr().err
    # Files pushed to /data/local/tmp, binary made executable, both runs pinned to the big cores.
    log = calls(root)
    pushes = [c[4] for c in log if c[2:3] == ["push"]]
    assert pushes == ["/data/local/tmp/android_aarch64_benchmark_model", "/data/local/tmp/tiny_int8.tflite"]
    assert any(c[2:] == ["shell", "chmod 755 /data/local/tmp/android_aarch64_benchmark_model"] for c in log)
    assert open(os.path.join(root, "taskset.log")).read().split() == ["f0", "f0"]
    # A second session finds identical files on the device and does not push them again.
    assert bench(models["int8"], binary, "--cpu-mask", "all") == 0
    assert [c for c in calls(root)[len(log):] if c[2:3] == ["push"]] == []
    assert "already on the device" in capsys.readouterr().err
    assert open(os.path.join(root, "taskset.log")).read().split() == ["f0", "f0"]  # --cpu-mask all: no taskset


def test_failed_delegate_shows_the_tools_lines_and_keeps_earlier_records(models, binary, phone, tmp_path, capsys):
    phone(thermal=(3,))  # never cools: the bounded wait gives up and says so
    out = tmp_path / "gpu.jsonl"
    assert bench(models["float"], binary, "--gpu", "--max-thermal-wait-s", "0.05", "--json-lines", str(out)) == 2
    err = capsys.readouterr().err
    assert "benchmark_model printed no timings" in err and "Failed to apply GPU delegate" in err
    assert "still at thermal status 3" in err
    [record] = results.read_records(out)
    assert record["delegate"] == "xnnpack" and record["thermal"]["cool"] is False


@pytest.mark.parametrize("devices, serial, message", [
    ("", None, "no Android device found"),
    ("A1:unauthorized", None, "device A1 is unauthorized"),
    ("A1:offline", None, "device A1 is offline"),
    ("A1:device,B2:device", None, "several devices are ready (A1, B2): choose one with --serial"),
    ("A1:device", "C3", "device C3 not found by adb (connected: A1)"),
    ("A1:device,B2:unauthorized", "B2", "device B2 is unauthorized"),
])
def test_device_selection_errors(models, binary, phone, capsys, devices, serial, message):
    phone(devices=devices)
    extra = ["--serial", serial] if serial else []
    assert bench(models["float"], binary, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_serial_picks_one_of_several(models, binary, phone, capsys):
    root = phone(devices="A1:device,B2:device")
    assert bench(models["float"], binary, "--serial", "B2") == 0
    assert {c[1] for c in calls(root) if c[0] == "-s"} == {"B2"}
    assert "median=" in capsys.readouterr().out


def test_adb_missing(models, binary, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert bench(models["float"], binary) == 2
    assert "adb not found on PATH" in capsys.readouterr().err


def bad_files(case, folder, model, binary):
    """(model, binary, expected message) with one of the two files wrong."""
    if case == "model absent":
        return folder / "absent.tflite", binary, f"model {folder / 'absent.tflite'} does not exist"
    if case == "model not tflite":
        (folder / "x.tflite").write_bytes(b"\0" * 64)
        return folder / "x.tflite", binary, "is not a TFLite file (no 'TFL3' identifier at bytes 4..8)"
    if case == "model corrupt":
        (folder / "c.tflite").write_bytes(model.read_bytes()[:300])
        return folder / "c.tflite", binary, "c.tflite is not a TFLite model the runtime can load"
    if case == "binary absent":
        return model, folder / "absent_bin", f"benchmark binary {folder / 'absent_bin'} does not exist"
    if case == "binary not elf":
        (folder / "script.sh").write_text("#!/bin/sh\n")
        return model, folder / "script.sh", "is not an ELF executable"
    return model, make_elf(folder / "riscv_bin", machine=243), "ELF for machine 243, not for an Android ABI"


@pytest.mark.parametrize("case", ["model absent", "model not tflite", "model corrupt", "binary absent",
                                  "binary not elf", "binary not android"])
def test_bad_files_are_refused_before_touching_the_device(models, binary, phone, tmp_path, capsys, case):
    root = phone()
    model, bad_binary, message = bad_files(case, tmp_path, models["float"], binary)
    assert bench(model, bad_binary) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert calls(root) == []


def test_binary_for_another_abi_than_the_devices(models, phone, tmp_path, capsys):
    phone()
    x86 = make_elf(tmp_path / "x86_benchmark_model", machine=62)
    assert bench(models["float"], x86) == 2
    assert "is built for x86_64 but device FAKE123 runs arm64-v8a, armeabi-v7a, armeabi" in capsys.readouterr().err


def test_cpu_mask_beyond_the_devices_cores(models, binary, phone, capsys):
    phone()
    assert bench(models["float"], binary, "--cpu-mask", "0x100") == 2
    assert "cpu mask 100 names cores that device FAKE123 lacks (it has 8: mask ff)" in capsys.readouterr().err


def test_device_lost_mid_run_keeps_the_records_written(models, binary, phone, tmp_path, monkeypatch, capsys):
    phone()
    monkeypatch.setenv("FAKE_ADB_LOSE_AFTER_RUNS", "1")
    out = tmp_path / "lost.jsonl"
    assert bench(models["float"], binary, "--threads", "1,2", "--json-lines", str(out)) == 2
    err = capsys.readouterr().err
    assert "device FAKE123 is no longer reachable" in err and f"1 record(s) already in {out} stay valid" in err
    assert [r["threads"] for r in results.read_records(out)] == [1]


def test_ctrl_c_leaves_a_valid_json_lines_file(models, binary, phone, tmp_path, monkeypatch):
    phone()
    monkeypatch.setenv("FAKE_ADB_HANG_FROM_RUN", "2")
    out = tmp_path / "interrupted.jsonl"
    # Ctrl-C as in a terminal, whatever this test runs under: a background job or a pytest-xdist worker starts
    # its children with SIGINT ignored, and Python then never raises KeyboardInterrupt (the process would hang).
    proc = subprocess.Popen([sys.executable, "-m", "android_bench", "bench", "adb", "--model", str(models["float"]),
                             "--benchmark-binary", str(binary), "--threads", "1,2", *FAST, "--json-lines", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err
    assert [r["threads"] for r in results.read_records(out)] == [1]


def test_hex_cpu_mask_pins_those_cores(models, binary, phone, capsys):
    root = phone()
    assert bench(models["float"], binary, "--cpu-mask", "0x0C") == 0
    assert open(os.path.join(root, "taskset.log")).read().split() == ["c"]
    assert "mask=c:" in capsys.readouterr().out


def test_push_failure_is_one_line(models, binary, phone, monkeypatch, cli_error, tmp_path):
    phone()
    monkeypatch.setenv("FAKE_ADB_PUSH_FAILS", "1")
    out = tmp_path / "r.jsonl"
    message = cli_error("bench", "adb", "--model", models["float"], "--benchmark-binary", binary, *FAST,
                        "--json-lines", out)
    assert message == (f"ghostnet: error: adb push {binary} /data/local/tmp/{binary.name} failed: adb: error: "
                       f"failed to copy '{binary}' to '/data/local/tmp/{binary.name}': remote No space left on device")
    assert not out.exists()


def test_adb_that_never_answers_names_the_command(models, binary, phone, monkeypatch, cli_error):
    phone()
    monkeypatch.setenv("FAKE_ADB_SILENT", "1")
    monkeypatch.setattr(device, "DEVICES_TIMEOUT_S", 1)
    message = cli_error("bench", "adb", "--model", models["float"], "--benchmark-binary", binary, *FAST)
    assert message == ("ghostnet: error: 'adb devices' did not answer within 1 s: the adb server hangs; "
                       "run 'adb kill-server' and retry")


def test_device_command_time_out_names_the_command(phone, monkeypatch):
    phone()
    adb = device.connect()
    monkeypatch.setenv("FAKE_ADB_SILENT", "1")
    with pytest.raises(device.DeviceLost, match=r"^'adb -s FAKE123 shell getprop ro.product.model' did not answer "
                                                r"within 1 s$"):
        adb.shell("getprop ro.product.model", timeout=1)
