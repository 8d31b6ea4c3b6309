"""``bench arm``: real .tflite files on the real aarch64 LiteRT under qemu-user, counted by the real plugin.

These need the emulator set up (``make arm``; the ``arm_setup`` fixture). ``bench compare --target arm`` is
tested in test_compare.py, on the conversions that module makes anyway.
"""
import json

import numpy as np
import pytest

from android_bench import results
from android_bench.arm import cpus, emulator, setup
from android_bench.arm.emulator import Emulator
from ghostnet_tf.runtime import make_interpreter
from ghostnet_tf.cli import main


@pytest.fixture(scope="module")
def emu(arm_setup):
    """The emulator on its default core, Cortex-A76."""
    return Emulator.load()


def host_output(path, x):
    interpreter = make_interpreter(model_path=path, num_threads=1)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def some_input(path, seed=3):
    detail = make_interpreter(model_path=path).get_input_details()[0]
    rng = np.random.default_rng(seed)
    if detail["dtype"] == np.int8:
        return rng.integers(-128, 128, size=detail["shape"]).astype(np.int8)
    return rng.uniform(-2, 2, size=detail["shape"]).astype(np.float32)


@pytest.mark.parametrize("cpu", ["cortex-a76", "cortex-a53"])
def test_int8_runs_bit_identical_to_the_host(emu, models, cpu):
    x = some_input(models["int8"])
    (counts,), out, facts = emu.on(cpu).count([models["int8"]], x, runs=2)
    expected = host_output(models["int8"], x)
    assert out.dtype == np.int8 and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    assert facts["cpu"] == cpu and facts["midr"] == f"0x{cpus.CORES[cpu].midr:08x}"
    assert facts["guest_python"].startswith("3.11") and facts["emulator_version"].startswith("7.")
    # ~0.1 M MACs: tens of thousands of instructions per inference, far below a whole Python process (~1e9).
    assert counts["count"] == 2 and 20_000 < counts["per_inference"] < 2_000_000
    # The int8 fast path: SDOT on the dot-product core (Armv8.2), none on the Armv8.0 little core.
    if cpu == "cortex-a76":
        assert "asimddp" in facts["features"] and counts["dot_product_per_inference"] > 1000
    else:
        assert "asimddp" not in facts["features"] and counts["dot_product_per_inference"] == 0


@pytest.mark.parametrize("cpu", ["cortex-a76", "cortex-a53"])
def test_float32_runs_and_agrees_with_the_host(emu, models, cpu):
    x = some_input(models["float"])
    (counts,), out, _ = emu.on(cpu).count([models["float"]], x, runs=1)
    np.testing.assert_allclose(out, host_output(models["float"], x), rtol=1e-4, atol=1e-5)
    assert counts["dot_product_per_inference"] == 0 and 20_000 < counts["per_inference"] < 2_000_000


def test_the_count_is_identical_across_processes(emu, models):
    x = some_input(models["int8"])
    first = emu.count([models["int8"]], x, runs=2)[0]
    second = emu.count([models["int8"]], x, runs=2)[0]
    assert first == second


def test_without_xnnpack_the_builtin_kernels_cost_more(emu, models):
    x = some_input(models["int8"])
    (fast,), _, _ = emu.count([models["int8"]], x, runs=1)
    (slow,), _, _ = emu.count([models["int8"]], x, runs=1, use_xnnpack=False)
    assert slow["per_inference"] > fast["per_inference"]


def test_cli_writes_one_record_per_core(emu, models, tmp_path, capsys):
    out = tmp_path / "arm.jsonl"
    assert main(["bench", "arm", "--model", str(models["int8"]), "--cpu", "cortex-a76,cortex-a53", "--runs", "2",
                 "--json-lines", str(out)]) == 0
    records = results.read_records(out)
    assert [r["device"]["cpu"] for r in records] == ["cortex-a76", "cortex-a53"]
    for record in records:
        assert record["mode"] == "arm-emulated" and record["stats"] is None and record["threads"] == 1
        assert record["host_agreement"]["bit_exact"] is True and record["host_agreement"]["max_abs_diff"] == 0
        assert record["instructions"]["count"] == 2 and record["model"]["input_dtype"] == "int8"
        assert record["runtime"] == {"name": "ai-edge-litert", "version": "2.3.0", "platform": "manylinux_2_27_aarch64"}
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2 and "M instructions per inference" in printed[0] and "bit-exact" in printed[0]
    assert not any(unit in " ".join(printed) for unit in (" ms", " us", "latency"))


def test_setup_is_idempotent(emu, capsys):
    assert setup.install(emu.layout.root) == emu
    assert "already complete" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--cpu", "cortex-a99"], "--cpu: unknown core 'cortex-a99'; choose from cortex-a76"),
    (["--cpu", "max"], "--cpu max is refused: qemu 7.2's 'max' core (SME emulation) computes wrong int8 results"),
    (["--threads", "2"], "--threads: the instruction count is per inference on one core"),
])
def test_bad_options_are_one_line(models, cli, args, message):
    code, _, err = cli("bench", "arm", "--model", models["int8"], *args)
    assert code == 2 and message in err


def test_a_non_tflite_file_is_refused(emu, tmp_path, cli_error):
    bad = tmp_path / "notes.tflite"
    bad.write_text("hello")
    assert cli_error("bench", "arm", "--model", bad) == (
        f"ghostnet: error: model {bad} is not a TFLite file (no 'TFL3' identifier at bytes 4..8)")


def test_missing_setup_says_how_to_get_it(models, tmp_path, cli_error):
    line = cli_error("bench", "arm", "--model", models["int8"], "--cache", tmp_path / "empty")
    assert "the ARM emulator is not set up" in line and "ghostnet bench arm --setup" in line


def test_regions_are_parsed_and_the_marker_cost_subtracted():
    log = "\n".join(["ghostnet-region 0 insns=100 dot=0 mm=0", "ghostnet-region 1 insns=1100 dot=50 mm=7",
                     "ghostnet-region 2 insns=1000 dot=40 mm=5", "ghostnet-region 3 insns=1010 dot=40 mm=5",
                     "ghostnet-region 4 insns=1030 dot=40 mm=5"])
    assert emulator.parse_regions(log, 3) == [{
        "count": 3, "per_inference": 910, "min": 900, "max": 930, "first_inference": 1000, "marker_overhead": 100,
        "dot_product_per_inference": 40, "i8mm_per_inference": 5}]
    two = emulator.parse_regions(log + "\n" + log.replace("insns=1", "insns=2"), 3, models=2)
    assert [c["per_inference"] for c in two] == [910, 1810] and two[1]["first_inference"] == 1900
    with pytest.raises(emulator.ArmError, match="reported 5 regions, expected 4"):
        emulator.parse_regions(log, 2)


def test_fake_cpuinfo_carries_the_cores_midr():
    text = cpus.cpuinfo_text("cortex-a76", cpus.features(0b11 | 1 << 20, 1 << 13))
    assert "Features\t: fp asimd asimddp i8mm\n" in text
    assert "CPU implementer\t: 0x41\n" in text and "CPU variant\t: 0x4\n" in text
    assert "CPU part\t: 0xd0b\n" in text and "CPU revision\t: 1\n" in text
    a53 = cpus.cpuinfo_text("cortex-a53", [])
    assert "CPU part\t: 0xd03\n" in a53 and "CPU variant\t: 0x0\n" in a53 and "CPU revision\t: 4\n" in a53


def test_arm_records_never_carry_latency():
    record = json.loads(json.dumps({
        "schema": results.SCHEMA, "date": "2026-11-29T00:00:00+00:00", "mode": "arm-emulated",
        "model": {"path": "m", "sha256": "0", "size_bytes": 1, "input_shape": [1], "input_dtype": "int8"},
        "runtime": {}, "delegate": "xnnpack", "threads": 1, "cpu_mask": None, "device": {},
        "stats": {"count": 1, "mean_us": 5.0}, "warmup": None, "memory": {}, "op_profile": None, "thermal": None,
        "raw_output": None}))
    with pytest.raises(ValueError, match="has no latency stats"):
        results.validate_record(record)


def test_compare_without_the_emulator(tmp_path, monkeypatch):
    from android_bench.compare import arm_available

    monkeypatch.setenv("GHOSTNET_ARM_CACHE", str(tmp_path / "none"))
    said = []
    assert arm_available(None, said.append) is False
    assert said == ["compare: no ARM instruction table: the emulator is not set up (`make arm` or "
                    "`ghostnet bench arm --setup`, under a minute as root)"]
    assert arm_available(False, said.append) is False and len(said) == 1
    with pytest.raises(ValueError, match="--arm: the ARM emulator is not set up"):
        arm_available(True)


def test_a_cut_model_returns_the_intermediate_tensors(models, tmp_path):
    """The prefix after op k computes exactly the tensors the full model has there (builtin kernels, all
    tensors kept, read independently of the cutting code)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from android_bench.arm import breakdown

    path = str(models["int8"])
    full = Interpreter(model_path=path, experimental_preserve_all_tensors=True,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    full.allocate_tensors()
    x = some_input(path)
    full.set_tensor(full.get_input_details()[0]["index"], x)
    full.invoke()
    model = breakdown.Model(path)
    for length in (1, 2, 3):
        cut = tmp_path / f"cut{length}.tflite"
        cut.write_bytes(model.cut(length))
        interpreter = make_interpreter(model_path=cut, use_xnnpack=False)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        outputs = interpreter.get_output_details()
        assert [d["name"] for d in outputs] == [model.tensor(model.ops[length - 1].outputs[0]).name.decode()]
        np.testing.assert_array_equal(interpreter.get_tensor(outputs[0]["index"]),
                                      full.get_tensor(model.ops[length - 1].outputs[0]))


def test_per_block_breakdown_adds_up_to_the_count(emu, models, tmp_path, capsys):
    out = tmp_path / "arm.jsonl"
    assert main(["bench", "arm", "--model", str(models["int8"]), "--runs", "1", "--per-block",
                 "--json-lines", str(out)]) == 0
    (record,) = results.read_records(out)
    split = record["breakdown"]
    ops = [row["op"] for row in split["ops"]]
    assert ops == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    total = sum(row["instructions"] for row in split["ops"])
    assert total == sum(split["by_block"].values()) == sum(split["by_op"].values())
    # The last prefix is the whole model: its count is the record's, up to the few hundred instructions by
    # which repeated invokes differ.
    assert abs(total - record["instructions"]["per_inference"]) < 2000
    assert all(row["instructions"] > 0 for row in split["ops"][:3])
    assert split["ops"][0]["resolution"] == "16x16"
    printed = capsys.readouterr().out
    assert "M instructions per inference" in printed and "op type" in printed and "DEPTHWISE_CONV_2D" in printed


def test_setup_without_root_names_what_to_install(tmp_path, monkeypatch, cli_error):
    """No qemu with plugin support, and no way to install it: one line saying what to install by hand."""
    monkeypatch.setattr(setup, "qemu_binary", lambda: None)
    monkeypatch.setattr(setup.os, "geteuid", lambda: 1000)
    line = cli_error("bench", "arm", "--setup", "--cache", tmp_path / "arm")
    assert line == ("ghostnet: error: install qemu-user (the dynamic build with plugin support, 7.2 or newer; "
                    "not qemu-user-static) and gcc, e.g. `sudo apt-get install qemu-user gcc`, then rerun "
                    "`ghostnet bench arm --setup`")
    assert not (tmp_path / "arm" / "setup.json").exists()
