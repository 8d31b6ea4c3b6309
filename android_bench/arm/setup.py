"""``ghostnet bench arm --setup`` (``install()``): everything the ARM emulation needs, in one cache folder, in
well under a minute.

What goes where (``~/.cache/ghostnet-tf/arm`` unless ``$GHOSTNET_ARM_CACHE`` says otherwise):
    rootfs/      an aarch64 Debian userland with Python, unpacked from arm64 .debs (no emulation, no chroot)
    site/        the aarch64 wheels of LiteRT (the host's version) and numpy, installed by the host's pip
    counter.so   the qemu TCG plugin that counts guest instructions (built from counter.c against the
                 installed qemu's own plugin header, taken from its Debian source package)
    cores/NAME/  per emulated core: the guest root with a fake /proc/cpuinfo (see cpus.py); Cortex-A76 and
                 A53 made (and smoke-tested) by the setup, other cores on first use
    setup.json   what was installed, with versions and how long each step took

The faster route was measured against the alternative: debootstrap plus a second stage under emulation
takes about 8 minutes; downloading 28 arm64 .debs, ``dpkg -x`` and pip's ``--platform`` take about 15 s.
Host tools (qemu-user, gcc) are installed with apt-get when running as root; elsewhere the error names them.
What a complete, current setup is (its layout, the manifest it must match) is ``emulator.py``'s: it reads
the setup this module writes.
"""
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time

from android_bench.arm.emulator import (ARM64_PACKAGES, GUEST_PYTHON, WHEEL_PLATFORM, Emulator, Layout, SetupError,
                                        expected_manifest, plugin_source, qemu_binary, qemu_version)
from ghostnet_tf.files import write_atomic

HOST_PACKAGES = ("qemu-user", "gcc")
MANUAL = ("install qemu-user (the dynamic build with plugin support, 7.2 or newer; not qemu-user-static) and gcc, "
          "e.g. `sudo apt-get install qemu-user gcc`, then rerun `ghostnet bench arm --setup`")


def _run(command, what, env=None, cwd=None):
    """Run a setup command; a failure becomes a SetupError naming the step and the tool's last lines."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    except OSError as exc:
        raise SetupError(f"{what}: cannot run {command[0]} ({exc.strerror})") from None
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise SetupError(f"{what} failed: {tail}")
    return done.stdout


def _host_tools(log):
    """qemu-aarch64 with plugin support and a C compiler; installed with apt-get when we are root."""
    if platform.system() != "Linux":
        raise SetupError(f"the ARM emulation runs on Linux only (this is {platform.system()}); use a phone: "
                         "`ghostnet bench adb`")
    if qemu_binary() and shutil.which("gcc"):
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        raise SetupError(MANUAL)
    log(f"  installing {' '.join(HOST_PACKAGES)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *HOST_PACKAGES]
    try:
        _run(command, "apt-get install", env=env)
    except SetupError:
        _run(["apt-get", "update", "-q"], "apt-get update", env=env)
        _run(command, "apt-get install", env=env)
    if not qemu_binary():
        raise SetupError("apt-get installed qemu-user but its qemu-aarch64 has no plugin support; " + MANUAL)


def _host_sources():
    """The host's Debian 'deb' sources as (uri, suite, components) triples, from one-line and deb822 files."""
    entries = []
    files = glob.glob("/etc/apt/sources.list") + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                words = [w for w in line.split("#")[0].split() if not w.startswith("[")]
                if len(words) >= 4 and words[0] == "deb":
                    entries.append((words[1], words[2], " ".join(words[3:])))
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for stanza in handle.read().split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    key, sep, value = line.partition(":")
                    if sep and not line.startswith((" ", "#")):
                        fields[key.strip()] = value.strip()
                if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
                    for uri in fields.get("URIs", "").split():
                        for suite in fields.get("Suites", "").split():
                            entries.append((uri, suite, fields.get("Components", "")))
    return entries


def _apt(root, kind, arch=None):
    """apt-get options for a private configuration under ``root`` that leaves the host's apt state alone."""
    lists, cache = os.path.join(root, "lists"), os.path.join(root, "cache")
    for folder in (os.path.join(lists, "partial"), os.path.join(cache, "archives", "partial")):
        os.makedirs(folder, exist_ok=True)
    sources = os.path.join(root, "sources.list")
    entries = _host_sources()
    if not entries:
        raise SetupError("no Debian apt sources found in /etc/apt; the ARM setup downloads Debian's arm64 packages "
                         "and qemu's source package with apt-get")
    with open(sources, "w", encoding="utf-8") as handle:
        handle.writelines(f"{kind} {uri} {suite} {components}\n" for uri, suite, components in entries)
    options = ["-o", f"Dir::Etc::SourceList={sources}", "-o", f"Dir::Etc::SourceParts={root}/none",
               "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}", "-o", "Dir::State::Status=/dev/null",
               "-q"]
    if os.geteuid() == 0:  # root's apt downloads as _apt, which cannot write into this private folder
        options += ["-o", "APT::Sandbox::User=root"]
    if arch:
        options += ["-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures::={arch}"]
    return ["apt-get", *options]


def _plugin_header(work, log):
    """qemu-plugin.h of the installed qemu (no binary package ships it): from its Debian source package."""
    try:
        source = subprocess.run(["dpkg-query", "-W", "-f", "${source:Package}=${source:Version}", "qemu-user"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        source = ""
    if not source:
        raise SetupError("cannot tell the installed qemu's source version (dpkg-query knows no qemu-user): "
                         "the counting plugin needs qemu's qemu-plugin.h; " + MANUAL)
    apt_src = _apt(os.path.join(work, "apt-src"), "deb-src")
    _run([*apt_src, "update"], "apt-get update (deb-src)")
    folder = os.path.join(work, "qemu-src")
    os.makedirs(folder, exist_ok=True)
    _run([*apt_src, "source", "--download-only", source], f"apt-get source {source}", cwd=folder)
    tarballs = glob.glob(os.path.join(folder, "*.orig.tar.*"))
    if not tarballs:
        raise SetupError(f"apt-get source {source} brought no .orig tarball")
    with tarfile.open(tarballs[0]) as tar:
        for member in tar:
            if member.name.endswith("include/qemu/qemu-plugin.h"):
                include = os.path.join(work, "include")
                os.makedirs(include, exist_ok=True)
                with tar.extractfile(member) as src, open(os.path.join(include, "qemu-plugin.h"), "wb") as dst:
                    shutil.copyfileobj(src, dst)
                log(f"  qemu-plugin.h from {source}")
                return include
    raise SetupError(f"the source of {source} has no include/qemu/qemu-plugin.h")


def _build_plugin(layout, work, log):
    source = os.path.join(work, "counter.c")
    with open(source, "wb") as handle:
        handle.write(plugin_source())
    include = _plugin_header(work, log)
    out = layout.plugin + ".tmp"
    _run(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-I", include, "-o", out, source], "building the counting plugin")
    os.replace(out, layout.plugin)


def _userland(layout, work, log):
    debs = os.path.join(work, "debs")
    os.makedirs(debs, exist_ok=True)
    apt_arm = _apt(os.path.join(work, "apt-arm64"), "deb", arch="arm64")
    _run([*apt_arm, "update"], "apt-get update (arm64)")
    _run([*apt_arm, "download", *ARM64_PACKAGES], "apt-get download (arm64 packages)", cwd=debs)
    staging = os.path.join(work, "rootfs")
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        _run(["dpkg-deb", "-x", deb, staging], f"unpacking {os.path.basename(deb)}")
    shutil.rmtree(layout.rootfs, ignore_errors=True)
    os.replace(staging, layout.rootfs)
    log(f"  {len(ARM64_PACKAGES)} arm64 packages unpacked")


def _wheels(layout, work, litert_version):
    staging = os.path.join(work, "site")
    _run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", staging,
          "--platform", WHEEL_PLATFORM, "--only-binary=:all:", "--python-version", GUEST_PYTHON,
          "--implementation", "cp", f"ai-edge-litert=={litert_version}", "numpy"],
         f"pip install of the aarch64 wheels (ai-edge-litert=={litert_version}, numpy)")
    shutil.rmtree(layout.site, ignore_errors=True)
    os.replace(staging, layout.site)


def _smoke_test(emulator):
    """The emulated Python starts on the default cores and imports LiteRT (their guest roots are made here)."""
    for name in ("cortex-a76", "cortex-a53"):
        emulator.on(name).guest_root()


def install(cache=None, log=print):
    """Install what the emulation needs and return its ``Emulator`` (idempotent: a complete, current setup
    returns at once)."""
    layout = Layout.at(cache)
    try:
        current = Emulator.load(layout.root)
        log(f"arm setup: already complete in {layout.root}")
        return current
    except SetupError:
        pass
    started = time.perf_counter()
    seconds = {}

    def step(name, function, *args):
        begin = time.perf_counter()
        log(f"arm setup: {name} ...")
        function(*args)
        seconds[name] = round(time.perf_counter() - begin, 1)
        log(f"arm setup: {name} done in {seconds[name]:.1f} s")

    work = layout.work
    try:
        os.makedirs(layout.root, exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
    except OSError as exc:
        raise SetupError(f"cannot write into the cache folder {layout.root} ({exc.strerror}); give a writable "
                         "--cache (or set GHOSTNET_ARM_CACHE to one)") from None
    step("host tools (qemu-user, gcc)", _host_tools, log)
    wanted = expected_manifest(qemu_version(qemu_binary()))
    step("counting plugin", _build_plugin, layout, work, log)
    step("aarch64 userland", _userland, layout, work, log)
    step("aarch64 LiteRT and numpy wheels", _wheels, layout, work, wanted["ai_edge_litert"])
    shutil.rmtree(layout.cores, ignore_errors=True)
    manifest = {**wanted, "guest_python": GUEST_PYTHON, "wheel_platform": WHEEL_PLATFORM, "seconds": seconds}
    write_atomic(layout.manifest, json.dumps(manifest, indent=2).encode())
    shutil.rmtree(work, ignore_errors=True)
    current = Emulator.load(layout.root)
    step("emulated Cortex-A76 and Cortex-A53 (LiteRT imports)", _smoke_test, current)
    log(f"arm setup: complete in {time.perf_counter() - started:.0f} s ({layout.root})")
    return current
