"""Stand-in ``adb``: serves the folder $FAKE_ADB_ROOT as the device and logs every call.

Device paths (/data/..., /sys/...) are mapped into the folder and ``adb shell`` runs the command with the
host's ``sh``, with getprop / dumpsys / taskset emulated as shell functions. Running a pushed ELF file with
``--flags`` runs ``benchmark_model.py`` (real LiteRT) instead, which prints benchmark_model's format.

Environment: FAKE_ADB_ROOT (the device folder), FAKE_ADB_DEVICES ("SERIAL:state,..."),
FAKE_ADB_LOSE_AFTER_RUNS (the device vanishes after that many benchmark runs),
FAKE_ADB_HANG_FROM_RUN (benchmark runs from that number on sleep first, to be interrupted),
FAKE_ADB_SILENT (every call sleeps: an adb that never answers), FAKE_ADB_PUSH_FAILS (pushes fail, as on a
full /data partition).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ["FAKE_ADB_ROOT"])
RUNS = ROOT / "runs"
PRELUDE = r'''
getprop() { grep "^$1=" "$R/build.prop" | cut -d= -f2-; }
dumpsys() {
  s=$(head -n 1 "$R/thermal")
  if [ "$(wc -l < "$R/thermal")" -gt 1 ]; then sed -i 1d "$R/thermal"; fi
  echo "IsStatusOverride: false"; echo "Thermal Status: $s"
}
taskset() { echo "$1" >> "$R/taskset.log"; shift; "$@"; }
'''


def devices():
    lose_after = int(os.environ.get("FAKE_ADB_LOSE_AFTER_RUNS") or 0)
    if lose_after and runs() >= lose_after:
        return {}
    spec = os.environ.get("FAKE_ADB_DEVICES", "FAKE123:device")
    return dict(item.split(":") for item in spec.split(",") if item)


def runs():
    return int(RUNS.read_text()) if RUNS.exists() else 0


def device_path(path):
    return re.sub(r"(?<![\w./-])/(data|sys)/", lambda m: f"{ROOT}/{m.group(1)}/", path)


def fail(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def shell(command):
    command = device_path(command)
    for path in set(re.findall(rf"{re.escape(str(ROOT))}/data/local/tmp/[^\s'\"]+(?= --)", command)):
        binary = Path(path)
        if binary.read_bytes()[:4] != b"\x7fELF":
            continue
        if not os.access(binary, os.X_OK):
            fail(f"/system/bin/sh: {path}: can't execute: Permission denied", 126)
        RUNS.write_text(str(runs() + 1))
        hang_from = int(os.environ.get("FAKE_ADB_HANG_FROM_RUN") or 0)
        if hang_from and runs() >= hang_from:
            time.sleep(60)
        command = command.replace(path, f"{sys.executable} {HERE / 'benchmark_model.py'}")
    done = subprocess.run(["sh", "-c", PRELUDE + command], env={**os.environ, "R": str(ROOT)})
    sys.exit(done.returncode)


def main(argv):
    with open(ROOT / "calls.jsonl", "a") as log:
        log.write(json.dumps(argv) + "\n")
    if os.environ.get("FAKE_ADB_SILENT"):
        time.sleep(600)
    if argv[:1] == ["devices"]:
        print("List of devices attached")
        for serial, state in devices().items():
            print(f"{serial}\t{state}")
        print()
        return
    if argv[:1] != ["-s"]:
        fail("fake adb: the benchmark must always name the device with -s")
    serial, command, args = argv[1], argv[2], argv[3:]
    state = devices().get(serial)
    if state is None:
        fail(f"adb: device '{serial}' not found")
    if state != "device":
        fail(f"adb: device {state}")
    if command == "push":
        local, remote = args
        if os.environ.get("FAKE_ADB_PUSH_FAILS"):
            fail(f"adb: error: failed to copy '{local}' to '{remote}': remote No space left on device")
        shutil.copyfile(local, device_path(remote))
        os.chmod(device_path(remote), 0o644)
        print(f"{local}: 1 file pushed, 0 skipped.")
    elif command == "shell":
        shell(" ".join(args))
    else:
        fail(f"fake adb: unsupported command {command}")


main(sys.argv[1:])
