"""``bench adb``: TFLite's benchmark_model on an Android phone, one run per (threads x delegate)."""
import argparse
import os
import shlex
import sys
import time

from android_bench import device, modelfile, results
from android_bench.cli import add_common_options, emit
from android_bench.parsing import parse_benchmark_output
from ghostnet_tf.cli import UsageError
from ghostnet_tf.files import check_writable


def parse_cpu_mask(text):
    """'big', 'all' or a hex core mask ('f0', '0xF0') -> 'big' | 'all' | 'f0'."""
    word = str(text).strip().lower()
    if word in ("big", "all"):
        return word
    try:
        mask = int(word, 16)
    except ValueError:
        mask = 0
    if mask <= 0:
        raise argparse.ArgumentTypeError(f"expected big, all or a hex core mask like f0, got {text!r}")
    return format(mask, "x")


def resolve_cpu_mask(choice, facts):
    """The hex mask for ``taskset`` or None (no pinning) for the device described by ``facts``."""
    all_cores = (1 << facts["cores"]) - 1
    if choice == "all":
        return None
    mask = sum(1 << cpu for cpu in facts["big_cores"]) if choice == "big" else int(choice, 16)
    if mask & ~all_cores:
        raise UsageError(f"cpu mask {choice} names cores that device {facts['serial']} lacks "
                         f"(it has {facts['cores']}: mask {format(all_cores, 'x')})")
    return None if mask == all_cores else format(mask, "x")


def benchmark_command(binary, model, threads, delegate, runs, warmup, use_xnnpack, op_profile, cpu_mask):
    """The remote shell command of one configuration; stderr joins stdout so the log keeps its order.

    ``--min_secs=0``/``--warmup_min_secs=0`` make the run counts exactly ``runs``/``warmup``, as in ``bench local``.
    """
    flags = [f"--graph={model}", f"--num_threads={threads}", f"--num_runs={runs}", f"--warmup_runs={warmup}",
             "--min_secs=0", "--warmup_min_secs=0", f"--use_xnnpack={str(use_xnnpack).lower()}",
             "--report_peak_memory_footprint=true"]
    if delegate in ("gpu", "nnapi"):
        flags.append(f"--use_{delegate}=true")
    if op_profile:
        flags.append("--enable_op_profiling=true")
    prefix = ["taskset", cpu_mask] if cpu_mask else []
    return " ".join(shlex.quote(part) for part in [*prefix, binary, *flags]) + " 2>&1"


def add_device_options(parser, binary_required=True):
    """The phone options of ``bench adb``, shared with ``bench compare --target adb``."""
    parser.add_argument("--benchmark-binary", required=binary_required, metavar="PATH",
                        help="benchmark_model for the phone (e.g. android_aarch64_benchmark_model)")
    parser.add_argument("--serial", help="the device to use when several are connected (see adb devices)")
    parser.add_argument("--cpu-mask", type=parse_cpu_mask, default="big",
                        help="pin with taskset: big (the fastest cores, default), all (no pinning) or a hex mask")
    parser.add_argument("--cooldown-s", type=float, default=5.0, help="pause between configurations (default 5)")
    parser.add_argument("--max-thermal-wait-s", type=float, default=300.0,
                        help="longest wait for the thermal status to reach 0 before each run (default 300)")
    parser.add_argument("--thermal-poll-s", type=float, default=10.0, help="thermal status poll interval (default 10)")


def register(bench_sub):
    parser = bench_sub.add_parser("adb", help="benchmark on an Android phone with benchmark_model over adb",
                                  description="Push the model and TFLite's benchmark_model to a phone, run one "
                                              "benchmark per threads x delegate, and record the results.")
    add_common_options(parser)
    add_device_options(parser)
    parser.add_argument("--gpu", action="store_true", help="also run with the GPU delegate")
    parser.add_argument("--nnapi", action="store_true", help="also run with the NNAPI delegate")
    parser.add_argument("--op-profile", action="store_true", help="per-op profiling, summarized per op type")
    parser.set_defaults(func=bench_adb)


class AdbSession:
    """A phone ready to benchmark: checked, binary pushed, facts read. ``measure`` runs one configuration
    (pushing the model unless the same file is there), so ``bench adb`` and ``bench compare`` share it."""

    def __init__(self, binary, serial=None, cpu_mask="big", use_xnnpack=True, cooldown_s=5.0,
                 max_thermal_wait_s=300.0, thermal_poll_s=10.0, op_profile=False):
        binary_abi = modelfile.elf_abi(binary)
        self.adb = device.connect(serial)
        self.facts = device.facts(self.adb)
        if binary_abi not in self.facts["abilist"]:
            raise UsageError(f"benchmark binary {binary} is built for {binary_abi} but device "
                             f"{self.adb.serial} runs {', '.join(self.facts['abilist']) or 'an unknown ABI'}")
        self.cpu_mask = resolve_cpu_mask(cpu_mask, self.facts)
        self.remote_binary = f"{device.DEVICE_DIR}/{os.path.basename(binary)}"
        self._push(binary, self.remote_binary)
        self.adb.shell(f"chmod 755 {shlex.quote(self.remote_binary)}")
        self.runtime = {"name": "benchmark_model", "version": None, "binary": os.path.basename(binary),
                        "binary_sha256": modelfile.sha256_file(binary)}
        self.use_xnnpack, self.op_profile = use_xnnpack, op_profile
        self.cooldown_s, self.max_thermal_wait_s, self.thermal_poll_s = cooldown_s, max_thermal_wait_s, thermal_poll_s
        self._runs_done = 0
        self._models = {}  # local model path -> (model facts, path on the device)

    def _push(self, local, remote):
        action = "pushed" if device.push(self.adb, local, remote) else "already on the device, not pushed:"
        print(f"{action} {remote}", file=sys.stderr)

    def _prepare(self, model_path):
        """Check and push a model once per session (compare measures each model once per round)."""
        if model_path not in self._models:
            model = modelfile.check_tflite(model_path)
            remote_model = f"{device.DEVICE_DIR}/{os.path.basename(model_path)}"
            self._push(model_path, remote_model)
            self._models[model_path] = (model, remote_model)
        return self._models[model_path]

    def measure(self, model_path, threads, delegate, runs, warmup):
        """One benchmark_model run: cooldown, thermal wait, run, parse; returns the record."""
        model, remote_model = self._prepare(model_path)
        if self._runs_done and self.cooldown_s > 0:
            print(f"cooling down {self.cooldown_s:g} s", file=sys.stderr, flush=True)
            time.sleep(self.cooldown_s)
        thermal = device.wait_until_cool(self.adb, self.max_thermal_wait_s, self.thermal_poll_s)
        command = benchmark_command(self.remote_binary, remote_model, threads, delegate, runs, warmup,
                                    self.use_xnnpack, self.op_profile, self.cpu_mask)
        output = self.adb.shell(command, timeout=1800)
        self._runs_done += 1
        timings = parse_benchmark_output(output)
        timings["memory"]["source"] = "benchmark_model (peak via periodic monitoring)"
        return results.make_record(mode="adb", model=model, runtime=self.runtime, delegate=delegate,
                                   threads=threads, cpu_mask=self.cpu_mask, device=self.facts, timings=timings,
                                   thermal=thermal, raw_output=output)


def session_from_args(args):
    return AdbSession(args.benchmark_binary, args.serial, args.cpu_mask, args.xnnpack, args.cooldown_s,
                      args.max_thermal_wait_s, args.thermal_poll_s, getattr(args, "op_profile", False))


def bench_adb(args):
    # Everything checkable without a phone is checked first.
    modelfile.check_tflite(args.model)
    modelfile.elf_abi(args.benchmark_binary)
    if args.json_lines:
        check_writable(args.json_lines, "--json-lines")
    session = session_from_args(args)
    delegates = ["xnnpack" if args.xnnpack else "cpu"] + ["gpu"] * args.gpu + ["nnapi"] * args.nnapi
    configs = [(threads, delegate) for delegate in delegates for threads in args.threads]
    written = 0
    try:
        for threads, delegate in configs:
            emit(session.measure(args.model, threads, delegate, args.runs, args.warmup), args.json_lines)
            written += 1
    except device.DeviceLost as exc:
        kept = f"; the {written} record(s) already in {args.json_lines} stay valid" if args.json_lines and written else ""
        raise device.DeviceLost(f"{exc}{kept}") from None
