"""TFLite's benchmark_model on an Android phone over adb, one run per configuration (``bench adb`` and
``bench compare --target adb``). Library code: errors are ValueError / device.DeviceError, progress goes
to a ``log(message)`` callback."""
import os
import shlex
import time

from android_bench import device, modelfile, results
from android_bench.parsing import parse_benchmark_output


def resolve_cpu_mask(choice, facts):
    """The hex mask for ``taskset`` or None (no pinning) for the device described by ``facts``.
    ``choice``: "big", "all" or a hex mask such as "f0"."""
    all_cores = (1 << facts["cores"]) - 1
    if choice == "all":
        return None
    mask = sum(1 << cpu for cpu in facts["big_cores"]) if choice == "big" else int(choice, 16)
    if mask & ~all_cores:
        raise ValueError(f"cpu mask {choice} names cores that device {facts['serial']} lacks "
                         f"(it has {facts['cores']}: mask {format(all_cores, 'x')})")
    return None if mask == all_cores else format(mask, "x")


def benchmark_command(binary, model, run_config, op_profile, cpu_mask):
    """The remote shell command of one configuration; stderr joins stdout so the log keeps its order.

    ``--min_secs=0``/``--warmup_min_secs=0`` make the run counts exactly ``runs``/``warmup``, as in ``bench local``.
    """
    flags = [f"--graph={model}", f"--num_threads={run_config.threads}", f"--num_runs={run_config.runs}",
             f"--warmup_runs={run_config.warmup}", "--min_secs=0", "--warmup_min_secs=0",
             f"--use_xnnpack={str(run_config.use_xnnpack).lower()}", "--report_peak_memory_footprint=true"]
    if run_config.accelerator:
        flags.append(f"--use_{run_config.accelerator}=true")
    if op_profile:
        flags.append("--enable_op_profiling=true")
    prefix = ["taskset", cpu_mask] if cpu_mask else []
    return " ".join(shlex.quote(part) for part in [*prefix, binary, *flags]) + " 2>&1"


class AdbSession:
    """A phone ready to benchmark: checked, binary pushed, facts read. The runner (``android_bench.runner``) of
    ``bench adb`` and ``bench compare --target adb``: ``measure`` runs one configuration, pushing the model
    unless the same file is there."""

    def __init__(self, binary, serial=None, cpu_mask="big", cooldown_s=5.0, max_thermal_wait_s=300.0,
                 thermal_poll_s=10.0, op_profile=False, log=lambda message: None):
        binary_abi = modelfile.elf_abi(binary)
        self.log = log
        self.adb = device.connect(serial)
        self.facts = device.facts(self.adb)
        if binary_abi not in self.facts["abilist"]:
            raise ValueError(f"benchmark binary {binary} is built for {binary_abi} but device "
                             f"{self.adb.serial} runs {', '.join(self.facts['abilist']) or 'an unknown ABI'}")
        self.cpu_mask = resolve_cpu_mask(cpu_mask, self.facts)
        self.remote_binary = f"{device.DEVICE_DIR}/{os.path.basename(binary)}"
        self._push(binary, self.remote_binary)
        self.adb.shell(f"chmod 755 {shlex.quote(self.remote_binary)}")
        self.runtime = {"name": "benchmark_model", "version": None, "binary": os.path.basename(binary),
                        "binary_sha256": modelfile.sha256_file(binary)}
        self.op_profile = op_profile
        self.cooldown_s, self.max_thermal_wait_s, self.thermal_poll_s = cooldown_s, max_thermal_wait_s, thermal_poll_s
        self._runs_done = 0
        self._models = {}  # local model path -> (model facts, path on the device)

    def _push(self, local, remote):
        action = "pushed" if device.push(self.adb, local, remote) else "already on the device, not pushed:"
        self.log(f"{action} {remote}")

    def _prepare(self, model_file):
        """Check and push a model once per session (compare measures each model once per round)."""
        if model_file not in self._models:
            model = modelfile.check_tflite(model_file)
            remote_model = f"{device.DEVICE_DIR}/{os.path.basename(model_file)}"
            self._push(model_file, remote_model)
            self._models[model_file] = (model, remote_model)
        return self._models[model_file]

    def measure(self, model_file, run_config):
        """One benchmark_model run: cooldown, thermal wait, run, parse; returns the record. benchmark_model
        feeds its own random input, whatever the model takes (``run_config.seed`` is not used)."""
        model, remote_model = self._prepare(model_file)
        if self._runs_done and self.cooldown_s > 0:
            self.log(f"cooling down {self.cooldown_s:g} s")
            time.sleep(self.cooldown_s)
        thermal = device.wait_until_cool(self.adb, self.max_thermal_wait_s, self.thermal_poll_s, self.log)
        command = benchmark_command(self.remote_binary, remote_model, run_config, self.op_profile, self.cpu_mask)
        output = self.adb.shell(command, timeout=1800)
        self._runs_done += 1
        timings = parse_benchmark_output(output)
        timings["memory"]["source"] = "benchmark_model (peak via periodic monitoring)"
        return results.make_record(mode="adb", model=model, runtime=self.runtime, delegate=run_config.delegate,
                                   threads=run_config.threads, cpu_mask=self.cpu_mask, device=self.facts,
                                   timings=timings, thermal=thermal, raw_output=output)
