"""``ghostnet bench arm``: a .tflite file on the real aarch64 LiteRT under ``qemu-aarch64 -cpu CORE``, with the
guest instructions of each inference counted exactly by the plugin (counter.c).

An instruction count is not a latency: the emulator models no caches, no pipeline and no memory stalls. It
is the work the phone's kernels do, free of noise, comparable between models on one core. Wall time under
emulation says nothing about a phone and is never recorded.

``Emulator.load()`` finds what ``setup.install()`` put into the cache (this module says what a complete,
current setup is, so that a stale one is refused), ``on(cpu)`` picks the core, ``measure`` is the runner.
"""
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import resources
from importlib.metadata import version

import numpy as np

from android_bench import modelfile, results
from android_bench.arm import breakdown, cpus
from android_bench.inputs import input_contracts
from ghostnet_tf.runtime import get_runtime, make_interpreter

GUEST_PYTHON = "3.11"
WHEEL_PLATFORM = "manylinux_2_27_aarch64"
# The arm64 packages of a Python 3.11 userland, and the libraries its stdlib modules load.
ARM64_PACKAGES = (
    "python3.11-minimal libpython3.11-minimal libpython3.11-stdlib media-types libc6 libgcc-s1 libstdc++6 "
    "libexpat1 zlib1g libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 "
    "libuuid1 libcrypt1 libnsl2 libtirpc3 libdb5.3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 "
    "libcom-err2 libkeyutils1").split()
GUEST_SCRIPT = os.path.join(os.path.dirname(__file__), "guest.py")
REGION = re.compile(r"^ghostnet-region (\d+) insns=(\d+) dot=(\d+) mm=(\d+)$", re.M)
PROGRESS = re.compile(rb"^ghostnet-progress (\d+)/(\d+) (\d+)/(\d+)$", re.M)  # guest.py's, on its stderr
PROGRESS_S = 15.0  # how often the progress of a running guest is reported
STALL_S = 1800.0  # a guest silent for this long (no inference finished) is stuck
XNNPACK_LINE = "Created TensorFlow Lite XNNPACK delegate"
# Run in each new core's guest: it must start, import LiteRT and numpy, and print the AT_HWCAP (16) and
# AT_HWCAP2 (26) words qemu hands the emulated core, i.e. its features.
PROBE = ("import ctypes, numpy, ai_edge_litert.interpreter; g = ctypes.CDLL(None).getauxval; "
         "g.restype = ctypes.c_ulong; print(g(16), g(26))")


_GUESTS, _GUESTS_LOCK = set(), threading.Lock()  # the emulated processes running now, for stop_guests()


def _kill(process):
    """End a guest and everything in its process group, and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stop_guests():
    """Kill every emulated process still running (from any thread): a stopped run stops what it started."""
    with _GUESTS_LOCK:
        running = list(_GUESTS)
    for process in running:
        _kill(process)


def _last_progress(handle):
    """(model, models, inference, inferences) of the last progress line in a guest's stderr file, or None.
    Read with pread, which leaves the offset the guest writes at alone."""
    size = os.fstat(handle.fileno()).st_size
    found = PROGRESS.findall(os.pread(handle.fileno(), 4096, max(0, size - 4096)))
    return tuple(int(v) for v in found[-1]) if found else None


class ArmError(RuntimeError):
    """An emulated run cannot give a trustworthy count; the message says why, in one line."""


class SetupError(ArmError):
    """The emulator cannot be set up (or is not set up yet); the message says what the user must do."""


def default_cache():
    if os.environ.get("GHOSTNET_ARM_CACHE"):
        return os.environ["GHOSTNET_ARM_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ghostnet-tf", "arm")


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each part of a setup lives inside the cache folder ``root`` (setup.py says what each part is)."""
    root: str
    rootfs: str
    site: str
    plugin: str
    cores: str
    manifest: str
    work: str
    python: str

    @classmethod
    def at(cls, cache=None):
        """The layout of ``cache`` (default ``default_cache()``)."""
        root = os.path.abspath(cache or default_cache())
        rootfs = os.path.join(root, "rootfs")
        return cls(root, rootfs, site=os.path.join(root, "site"), plugin=os.path.join(root, "counter.so"),
                   cores=os.path.join(root, "cores"), manifest=os.path.join(root, "setup.json"),
                   work=os.path.join(root, "work"), python=os.path.join(rootfs, "usr", "bin", f"python{GUEST_PYTHON}"))


def plugin_source():
    return resources.files("android_bench.arm").joinpath("counter.c").read_bytes()


def qemu_binary():
    """The dynamic qemu-aarch64 (plugins need it), or None."""
    path = shutil.which("qemu-aarch64")
    if path is None:
        return None
    try:
        help_text = subprocess.run([path, "-h"], capture_output=True, text=True).stdout
    except OSError:
        return None
    return path if "-plugin" in help_text else None


def qemu_version(path):
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].replace("qemu-aarch64 version ", "").strip() if out else "unknown"


def expected_manifest(qemu):
    """What a current setup's manifest records: a change to any of it (a new qemu, LiteRT version, plugin
    source or package list) makes the setup stale."""
    return {"qemu": qemu, "ai_edge_litert": version("ai-edge-litert"),
            "plugin_sha256": hashlib.sha256(plugin_source()).hexdigest(), "packages": ARM64_PACKAGES}


def parse_regions(log_text, runs, models=1):
    """Instruction counts from the plugin's log, one dict per model: the marker overhead, the first
    inference and ``runs`` more (the median is the figure; min and max show that they agree)."""
    regions = [tuple(int(v) for v in m.groups()[1:]) for m in REGION.finditer(log_text)]
    per_model = runs + 2
    if len(regions) != per_model * models:
        raise ArmError(f"the counting plugin reported {len(regions)} regions, expected {per_model * models}")
    counts = []
    for start in range(0, len(regions), per_model):
        chunk = regions[start:start + per_model]
        overhead = chunk[0][0]
        steady = [r[0] - overhead for r in chunk[2:]]
        counts.append({"count": runs, "per_inference": int(statistics.median(steady)), "min": min(steady),
                       "max": max(steady), "first_inference": chunk[1][0] - overhead, "marker_overhead": overhead,
                       "dot_product_per_inference": int(statistics.median(r[1] for r in chunk[2:])),
                       "i8mm_per_inference": int(statistics.median(r[2] for r in chunk[2:]))})
    return counts


def _agreement(arm_out, host_out, runtime):
    diff = np.abs(arm_out.astype(np.float64) - host_out.astype(np.float64))
    return {"host_runtime": f"{runtime.name} {runtime.version}", "host_machine": os.uname().machine,
            "max_abs_diff": float(diff.max()) if diff.size else 0.0, "bit_exact": bool(np.array_equal(arm_out, host_out)),
            "output_dtype": str(arm_out.dtype)}


def _core_facts(prefix):
    """The facts a finished guest root records (its core.json), or None if it has none or they are damaged."""
    try:
        with open(os.path.join(prefix, "core.json"), encoding="utf-8") as handle:
            facts = json.load(handle)
    except (OSError, ValueError):
        return None
    return facts if isinstance(facts, dict) and {"cpu", "midr", "features"} <= facts.keys() else None


@dataclasses.dataclass(frozen=True)
class Emulator:
    """A complete, current setup on one emulated core ``cpu``: the runner (``android_bench.runner``) of ``bench
    arm`` and of ``bench compare``'s instruction tables. ``log`` gets the progress of ``--per-block``."""
    layout: Layout
    qemu_path: str
    qemu_version: str
    wheel_platform: str
    cpu: str = "cortex-a76"
    log: Callable | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, cache=None, cpu="cortex-a76", log=None):
        """The setup in ``cache`` (default ``default_cache()``); SetupError telling how to set it up otherwise."""
        layout = Layout.at(cache)
        qemu = qemu_binary()
        try:
            with open(layout.manifest, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except (OSError, ValueError):
            manifest = None
        if manifest is None or qemu is None:
            raise SetupError(f"the ARM emulator is not set up in {layout.root}: run `ghostnet bench arm --setup` "
                             "(or `make arm`) first")
        wanted = expected_manifest(qemu_version(qemu))
        stale = [key for key in wanted if manifest.get(key) != wanted[key]]
        if stale:
            raise SetupError(f"the ARM emulator in {layout.root} was set up for another {', '.join(stale)}: "
                             "rerun `ghostnet bench arm --setup`")
        return cls(layout, qemu, manifest["qemu"], manifest["wheel_platform"], cpus.core(cpu).name, log)

    def on(self, cpu):
        """The same emulator on the core ``cpu``."""
        return dataclasses.replace(self, cpu=cpus.core(cpu).name)

    def _guest_env(self, prefix):
        """A fixed, minimal environment: the count of a run depends on nothing the user's shell happens to set."""
        return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/", "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1",
                "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": self.layout.site, "QEMU_LD_PREFIX": prefix}

    def stop(self):
        """End the emulated runs in progress (``compare`` calls it when it stops early)."""
        stop_guests()

    def run_guest(self, args, prefix, plugin_log=None, timeout=STALL_S):
        """The emulated Python on this core with the guest root ``prefix`` (and the counting plugin writing to
        ``plugin_log``); the finished process. It runs in a process group of its own, killed with everything
        in it if this call is interrupted (Ctrl-C, SIGTERM via ``cli.common.stops_cleanly``) or fails; it
        may run as long as it progresses (``timeout``: the longest silence), reported every PROGRESS_S."""
        command = [self.qemu_path, "-cpu", self.cpu]
        if plugin_log:
            command += ["-plugin", self.layout.plugin, "-d", "plugin", "-D", plugin_log]
        command += [self.layout.python, *args]
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                       env=self._guest_env(prefix), start_new_session=True)
            with _GUESTS_LOCK:
                _GUESTS.add(process)
            try:
                self._watch(process, err, timeout)
            except BaseException:
                _kill(process)
                raise
            finally:
                with _GUESTS_LOCK:
                    _GUESTS.discard(process)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(command, process.returncode, out.read().decode(errors="replace"),
                                               err.read().decode(errors="replace"))

    def _watch(self, process, err, timeout):
        """Wait for the guest, logging its progress; ArmError once it has been silent for ``timeout`` s."""
        started = quiet_since = time.monotonic()
        last = None
        while True:
            try:
                process.wait(timeout=min(PROGRESS_S, timeout))
                return
            except subprocess.TimeoutExpired:
                pass
            now, progress = time.monotonic(), _last_progress(err)
            if progress != last:
                last, quiet_since = progress, now
            elif now - quiet_since >= timeout:
                raise ArmError(f"the emulated run on {self.cpu} made no progress for {timeout:.0f} s (stopped it)")
            if self.log and progress:
                model, models, inference, inferences = progress
                where = f"model {model}/{models}, " if models > 1 else ""
                self.log(f"arm: {self.cpu}: {where}inference {inference}/{inferences} done "
                         f"({now - started:.0f} s elapsed)")

    def guest_root(self):
        """(path, facts) of this core's guest root: the userland, plus the /proc/cpuinfo and /sys CPU lists of a
        one-core phone with the core's MIDR and the features qemu gives it. Made once, then reused."""
        name, cores = self.cpu, self.layout.cores
        prefix = os.path.join(cores, name)
        facts = _core_facts(prefix)
        if facts is not None:
            return prefix, facts
        if os.path.exists(prefix):  # an unreadable or damaged one: made again
            shutil.rmtree(prefix, ignore_errors=True)
        try:
            os.makedirs(cores, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=f".{name}-", dir=cores)  # private: two runs may race here
        except OSError as exc:
            raise ArmError(f"--cache: the emulator's cache {self.layout.root} is not writable ({exc.strerror or exc}); "
                           f"the guest root of {name} is made there on its first use: make the folder writable, or "
                           "give a writable --cache (then `ghostnet bench arm --setup --cache DIR`)") from None
        try:
            cpu_dir = os.path.join(staging, "sys", "devices", "system", "cpu")
            os.makedirs(cpu_dir)
            os.makedirs(os.path.join(staging, "proc"))
            for entry in os.listdir(self.layout.rootfs):
                os.symlink(os.path.join(self.layout.rootfs, entry), os.path.join(staging, entry))
            for listing in ("possible", "present", "online"):
                with open(os.path.join(cpu_dir, listing), "w", encoding="utf-8") as handle:
                    handle.write("0\n")
            probe = self.run_guest(["-c", PROBE], staging, timeout=120)
            if probe.returncode != 0:
                raise ArmError(f"the emulated Python does not start on {name}: "
                               f"{' | '.join(probe.stderr.strip().splitlines()[-3:])}")
            features = cpus.features(*(int(v) for v in probe.stdout.split()))
            with open(os.path.join(staging, "proc", "cpuinfo"), "w", encoding="utf-8") as handle:
                handle.write(cpus.cpuinfo_text(name, features))
            facts = {"cpu": name, "midr": f"0x{cpus.CORES[name].midr:08x}", "features": features}
            with open(os.path.join(staging, "core.json"), "w", encoding="utf-8") as handle:
                json.dump(facts, handle)
            try:
                os.rename(staging, prefix)
            except OSError:  # another run made it first: theirs is the same
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        facts = _core_facts(prefix)
        if facts is None:
            raise ArmError(f"the guest root {prefix} has no readable core.json; remove it and rerun")
        return prefix, facts

    def count(self, model_files, x, runs=3, use_xnnpack=True, label=None):
        """Run each of ``model_files`` on input ``x`` (already in their input dtype) in one emulated process on
        this core. Returns (instruction counts per model as in ``parse_regions``, the first model's output,
        facts about core and guest). ``label``: what the messages call the files (default: the first)."""
        core = cpus.CORES[self.cpu]
        prefix, facts = self.guest_root()
        model_file = label or model_files[0]
        models = [os.path.abspath(p) for p in model_files]
        with tempfile.TemporaryDirectory(prefix="ghostnet-arm-") as tmp:
            input_path, output_path = os.path.join(tmp, "input.npy"), os.path.join(tmp, "output.npy")
            log_path = os.path.join(tmp, "plugin.log")
            np.save(input_path, x)
            done = self.run_guest([GUEST_SCRIPT, input_path, output_path, str(runs), "1" if use_xnnpack else "0",
                                   *models], prefix, plugin_log=log_path)
            if done.returncode != 0:
                raise ArmError(f"the emulated run of {model_file} on {core.name} failed: "
                               f"{' | '.join(done.stderr.strip().splitlines()[-3:])}")
            if "Error in cpuinfo" in done.stderr:
                raise ArmError(f"LiteRT's cpuinfo could not read the emulated {core.name}; its counts would "
                               "be those of the slow fallback kernels")
            if use_xnnpack and XNNPACK_LINE not in done.stderr:
                raise ArmError(f"XNNPACK did not run under emulation on {core.name}: the counts would not be "
                               "the phone's kernels")
            with open(log_path, encoding="utf-8") as handle:
                counts = parse_regions(handle.read(), runs, len(models))
            try:
                guest = json.loads((done.stdout.strip().splitlines() or [""])[-1])
            except ValueError:
                raise ArmError(f"the emulated run of {model_file} on {core.name} printed no facts line: "
                               f"{' | '.join(done.stderr.strip().splitlines()[-3:]) or 'no message'}") from None
            output = np.load(output_path)
        facts = {**facts, "note": core.note, "emulator": "qemu-aarch64", "emulator_version": self.qemu_version,
                 "guest_python": guest["python"], "guest_runtime_version": guest["runtime_version"]}
        return counts, output, facts

    def measure(self, model_file, run_config, per_block=False):
        """Count ``model_file``'s instructions per inference on this core: its ``arm-emulated`` record (not yet
        written), ``run_config.runs`` counted inferences after the first (warm-up runs are not needed: counts
        do not drift). The same input goes through this machine's runtime, and the record says whether both
        agree bit for bit. ``per_block`` adds the breakdown of the count by op, block, op type and resolution
        (``breakdown.py``)."""
        if run_config.threads != 1:
            raise ValueError("threads: the instruction count is per inference on one core; use 1 thread")
        run_config.refuse_accelerator("the ARM emulator")
        model = modelfile.check_tflite(model_file)
        if per_block:
            breakdown.Model(model_file)  # refuses a file it cannot cut before minutes of counting
        host = make_interpreter(model_path=model_file, num_threads=1, use_xnnpack=run_config.use_xnnpack)
        contracts = input_contracts(model_file, host)
        if len(contracts) != 1:
            raise ArmError(f"model {model_file} has {len(contracts)} inputs; bench arm feeds a model one input (an "
                           "image): give a model with a single input")
        (contract,) = contracts
        x = contract.sample(np.random.default_rng(run_config.seed))
        host.set_tensor(contract.index, x)
        host.invoke()
        host_out = host.get_tensor(host.get_output_details()[0]["index"])
        (instructions,), arm_out, device = self.count([model_file], x, run_config.runs, run_config.use_xnnpack)
        runtime = {"name": "ai-edge-litert", "version": device.pop("guest_runtime_version"),
                   "platform": self.wheel_platform}
        split = None
        if per_block:
            label = f"the cut models of {model_file} (--per-block)"
            split = breakdown.per_op(model_file, lambda paths: self.count(paths, x, 1, run_config.use_xnnpack,
                                                                          label)[0], self.log)
        return results.make_arm_record(model=model, runtime=runtime, delegate=run_config.delegate, device=device,
                                       instructions=instructions,
                                       host_agreement=_agreement(arm_out, host_out, get_runtime()), breakdown=split)
