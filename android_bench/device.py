"""Control of one Android device through ``adb``: selection, pushing files, device facts, thermal waits."""
import re
import shlex
import shutil
import subprocess
import time

from android_bench.modelfile import sha256_file

DEVICE_DIR = "/data/local/tmp"
PROPS = {"manufacturer": "ro.product.manufacturer", "model": "ro.product.model", "soc": "ro.soc.model",
         "soc_manufacturer": "ro.soc.manufacturer", "board": "ro.board.platform", "hardware": "ro.hardware",
         "android_version": "ro.build.version.release", "sdk": "ro.build.version.sdk",
         "abi": "ro.product.cpu.abi", "abilist": "ro.product.cpu.abilist"}
# adb's own complaints (stderr) that mean the device went away, as opposed to a failing remote command.
_LOST = re.compile(r"error: (device .*not found|no devices|device offline|closed|protocol fault)"
                   r"|device '.*' not found|no devices/emulators found", re.IGNORECASE)


# `adb devices` answers at once when the adb server runs; a minute of silence means it never will.
DEVICES_TIMEOUT_S = 60


class DeviceError(OSError):
    """adb is missing or silent, or no usable device is connected: the phone side, not the user's files."""


class DeviceLost(DeviceError):
    """The device disconnected or went offline while we used it."""


def _command_text(args):
    text = " ".join(str(a) for a in args)
    return text if len(text) <= 80 else text[:77] + "..."


class Adb:
    """``adb -s SERIAL`` for one selected device; every failure of adb itself becomes a one-line error."""

    def __init__(self, executable, serial):
        self.executable = executable
        self.serial = serial

    def run(self, *args, timeout=120):
        command = [self.executable, "-s", self.serial, *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceLost(f"'adb -s {self.serial} {_command_text(args)}' did not answer within {timeout} s") from None
        if done.returncode != 0 and _LOST.search(done.stderr):
            raise DeviceLost(f"device {self.serial} is no longer reachable ({done.stderr.strip().splitlines()[-1]})")
        return done

    def shell(self, command, timeout=120):
        """stdout of a remote shell command (the command's own failure is the caller's to judge)."""
        return self.run("shell", command, timeout=timeout).stdout


def find_adb():
    path = shutil.which("adb")
    if path is None:
        raise DeviceError("adb not found on PATH: install Android SDK platform-tools and add them to PATH")
    return path


def list_devices(executable):
    """[(serial, state)] from ``adb devices`` (state: device, unauthorized, offline, ...)."""
    try:
        done = subprocess.run([executable, "devices"], capture_output=True, text=True, errors="replace",
                              timeout=DEVICES_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"'adb devices' did not answer within {DEVICES_TIMEOUT_S} s: the adb server hangs; "
                          "run 'adb kill-server' and retry") from None
    if done.returncode != 0:
        raise DeviceError(f"'adb devices' failed: {(done.stderr or done.stdout).strip()}")
    devices = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(("List of devices", "*")):
            devices.append((parts[0], parts[1]))
    return devices


_STATE_HELP = {
    "unauthorized": "is unauthorized: unlock the phone and accept the 'Allow USB debugging' prompt",
    "offline": "is offline: reconnect the cable or run 'adb kill-server' and retry",
}


def _not_ready(serial, state):
    return f"device {serial} " + _STATE_HELP.get(state, f"is in state {state!r}")


def connect(serial=None):
    """An ``Adb`` for ``serial`` or for the one ready device; a distinct message for each way that fails."""
    executable = find_adb()
    devices = list_devices(executable)
    states = dict(devices)
    if serial is not None:
        if serial not in states:
            raise DeviceError(f"device {serial} not found by adb (connected: {', '.join(states) or 'none'})")
        if states[serial] != "device":
            raise DeviceError(_not_ready(serial, states[serial]))
        return Adb(executable, serial)
    ready = [s for s, state in devices if state == "device"]
    if len(ready) == 1:
        return Adb(executable, ready[0])
    if len(ready) > 1:
        raise DeviceError(f"several devices are ready ({', '.join(ready)}): choose one with --serial")
    if not devices:
        raise DeviceError("no Android device found: connect a phone with USB debugging enabled (adb devices is empty)")
    raise DeviceError("; ".join(_not_ready(s, state) for s, state in devices))


def push(adb, local_path, remote_path):
    """Push unless the device already holds an identical file (sha256sum); True if it was pushed."""
    remote = adb.shell(f"sha256sum {shlex.quote(remote_path)} 2>/dev/null").split()
    if remote[:1] == [sha256_file(local_path)]:
        return False
    done = adb.run("push", str(local_path), remote_path, timeout=600)
    if done.returncode != 0:
        detail = ((done.stderr or done.stdout).strip().splitlines() or ["no message"])[-1]
        raise DeviceError(f"adb push {local_path} {remote_path} failed: {detail}")
    return True


def facts(adb):
    """Device model, SoC, Android version, ABIs, cores with their max frequency, and which cores are big."""
    props = " ".join(PROPS.values())
    script = (f'for p in {props}; do echo "$p=$(getprop $p)"; done; '
              'for c in /sys/devices/system/cpu/cpu[0-9]*; do '
              'echo "${c##*/}=$(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null)"; done')
    values = dict(line.split("=", 1) for line in adb.shell(script).splitlines() if "=" in line)
    info = {"serial": adb.serial}
    info.update({name: values.get(prop) or None for name, prop in PROPS.items()})
    info["abilist"] = (info["abilist"] or info["abi"] or "").split(",")
    freqs = {int(key[3:]): int(value) if value.strip().isdigit() else None
             for key, value in values.items() if re.fullmatch(r"cpu\d+", key)}
    info["cores"] = len(freqs)
    info["max_freq_khz"] = [freqs[cpu] for cpu in sorted(freqs)]
    info["big_cores"] = big_cores(freqs)
    return info


def big_cores(max_freq_by_cpu):
    """Cores faster than the slowest cluster; all cores when they are all alike (or unknown)."""
    known = {cpu: f for cpu, f in max_freq_by_cpu.items() if f}
    slowest = min(known.values(), default=None)
    big = sorted(cpu for cpu, f in known.items() if f > slowest)
    return big or sorted(max_freq_by_cpu)


def thermal_status(adb):
    """Android's thermal status (0 none .. 6 shutdown) from dumpsys thermalservice; None if not reported."""
    match = re.search(r"Thermal Status:\s*(\d+)", adb.shell("dumpsys thermalservice 2>/dev/null"))
    return int(match.group(1)) if match else None


def wait_until_cool(adb, max_wait_s, poll_s, report=lambda message: None):
    """Poll the thermal status until it is 0 or ``max_wait_s`` passed; returns what happened, for the record.
    ``report(message)`` hears about every wait."""
    start = time.monotonic()
    first = status = thermal_status(adb)
    while status not in (None, 0) and time.monotonic() - start < max_wait_s:
        report(f"device thermal status {status}: waiting for it to cool "
               f"({time.monotonic() - start:.0f}/{max_wait_s:.0f} s)")
        time.sleep(poll_s)
        status = thermal_status(adb)
    waited = time.monotonic() - start
    if status not in (None, 0):
        report(f"device still at thermal status {status} after {waited:.0f} s: measuring anyway")
    return {"status_before": first, "status_after_wait": status, "waited_s": round(waited, 2),
            "cool": None if status is None else status == 0}
