"""A fake phone for the adb tests: a device folder (build props, CPU frequencies, thermal status sequence,
/data/local/tmp) plus an ``adb`` wrapper that runs adb.py with the test's Python."""
import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROPS = {"ro.product.manufacturer": "Google", "ro.product.model": "Pixel Fake", "ro.soc.manufacturer": "Google",
         "ro.soc.model": "Tensor G9", "ro.board.platform": "zuma", "ro.hardware": "fake",
         "ro.build.version.release": "14", "ro.build.version.sdk": "34", "ro.product.cpu.abi": "arm64-v8a",
         "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi"}
# Three clusters: 4 little (1.8 GHz), 3 big (2.4 GHz), 1 prime (3.0 GHz) -> big cores 4..7, mask f0.
MAX_FREQ_KHZ = (1800000,) * 4 + (2400000,) * 3 + (3000000,)


def make_elf(path, machine=183):
    """A file with a 64-bit little-endian ELF header for ``machine`` (183 aarch64, 40 arm, 62 x86_64)."""
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HH", 2, machine) + bytes(44)
    Path(path).write_bytes(header + b"\0" * 64)
    return Path(path)


def make_phone(folder, devices="FAKE123:device", thermal=(0,)):
    """Create the device folder and the adb wrapper under ``folder``; returns the environment to set."""
    root, bin_dir = Path(folder) / "device", Path(folder) / "bin"
    (root / "data/local/tmp").mkdir(parents=True)
    bin_dir.mkdir()
    for cpu, freq in enumerate(MAX_FREQ_KHZ):
        (root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq").mkdir(parents=True)
        (root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq").write_text(f"{freq}\n")
    (root / "build.prop").write_text("".join(f"{k}={v}\n" for k, v in PROPS.items()))
    (root / "thermal").write_text("".join(f"{status}\n" for status in thermal))
    adb = bin_dir / "adb"
    adb.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "adb.py"}" "$@"\n')
    adb.chmod(0o755)
    return {"FAKE_ADB_ROOT": str(root), "FAKE_ADB_DEVICES": devices, "BIN": str(bin_dir)}


def calls(root):
    """Every argv the fake adb received, in order."""
    log = Path(root) / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
