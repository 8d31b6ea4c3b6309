"""``ghostnet bench arm --setup``: everything the ARM emulation needs, in one cache folder, in well under a minute.

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
"""
import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import resources
from importlib.metadata import version

from android_bench.arm import cpus
from ghostnet_tf.files import write_atomic

GUEST_PYTHON = "3.11"
WHEEL_PLATFORM = "manylinux_2_27_aarch64"
# The arm64 packages of a Python 3.11 userland, and the libraries its stdlib modules load.
ARM64_PACKAGES = (
    "python3.11-minimal libpython3.11-minimal libpython3.11-stdlib media-types libc6 libgcc-s1 libstdc++6 "
    "libexpat1 zlib1g libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 "
    "libuuid1 libcrypt1 libnsl2 libtirpc3 libdb5.3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 "
    "libcom-err2 libkeyutils1").split()
HOST_PACKAGES = ("qemu-user", "gcc")
MANUAL = ("install qemu-user (the dynamic build with plugin support, 7.2 or newer; not qemu-user-static) and gcc, "
          "e.g. `sudo apt-get install qemu-user gcc`, then rerun `ghostnet bench arm --setup`")


class ArmError(RuntimeError):
    """An emulated run cannot give a trustworthy count; the message says why, in one line."""


class SetupError(ArmError):
    """The emulator cannot be set up (or is not set up yet); the message says what the user must do."""


class Layout:
    """Where each part of a setup lives inside the cache folder ``root``."""

    def __init__(self, root):
        self.root = root
        self.rootfs = os.path.join(root, "rootfs")
        self.site = os.path.join(root, "site")
        self.plugin = os.path.join(root, "counter.so")
        self.cores = os.path.join(root, "cores")
        self.manifest = os.path.join(root, "setup.json")
        self.work = os.path.join(root, "work")
        self.python = os.path.join(self.rootfs, "usr", "bin", f"python{GUEST_PYTHON}")


def default_cache():
    if os.environ.get("GHOSTNET_ARM_CACHE"):
        return os.environ["GHOSTNET_ARM_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ghostnet-tf", "arm")


def plugin_source():
    return resources.files("android_bench.arm").joinpath("counter.c").read_bytes()


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
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *HOST_PACKAGES]
    try:
        _run(install, "apt-get install", env=env)
    except SetupError:
        _run(["apt-get", "update", "-q"], "apt-get update", env=env)
        _run(install, "apt-get install", env=env)
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


def _wanted(qemu):
    return {"qemu": qemu, "ai_edge_litert": version("ai-edge-litert"),
            "plugin_sha256": hashlib.sha256(plugin_source()).hexdigest(), "packages": ARM64_PACKAGES}


# Run in each new core's guest: it must start, import LiteRT and numpy, and print the AT_HWCAP (16) and
# AT_HWCAP2 (26) words qemu hands the emulated core, i.e. its features.
PROBE = ("import ctypes, numpy, ai_edge_litert.interpreter; g = ctypes.CDLL(None).getauxval; "
         "g.restype = ctypes.c_ulong; print(g(16), g(26))")


def _guest_env(prefix, layout):
    """A fixed, minimal environment: the count of a run depends on nothing the user's shell happens to set."""
    return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/", "PYTHONHASHSEED": "0", "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": layout.site, "QEMU_LD_PREFIX": prefix}


def run_guest(setup, core, prefix, args, plugin_log=None, timeout=1800):
    """The emulated Python on ``core`` with the guest root ``prefix`` (and the counting plugin writing to
    ``plugin_log``); the finished process."""
    command = [setup["qemu_path"], "-cpu", core]
    if plugin_log:
        command += ["-plugin", setup["layout"].plugin, "-d", "plugin", "-D", plugin_log]
    command += [setup["layout"].python, *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=_guest_env(prefix, setup["layout"]))
    except subprocess.TimeoutExpired:
        raise ArmError(f"the emulated run on {core} did not finish within {timeout} s") from None


def core_prefix(setup, name):
    """The guest root for one core: the userland, plus the /proc/cpuinfo and /sys CPU lists of a one-core
    phone with that core's MIDR and the features qemu gives it. Made once, then reused."""
    layout = setup["layout"]
    prefix = os.path.join(layout.cores, name)
    facts_path = os.path.join(prefix, "core.json")
    if os.path.exists(facts_path):
        with open(facts_path, encoding="utf-8") as handle:
            return prefix, json.load(handle)
    os.makedirs(layout.cores, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=layout.cores)  # private: two runs may race here
    try:
        cpu_dir = os.path.join(staging, "sys", "devices", "system", "cpu")
        os.makedirs(cpu_dir)
        os.makedirs(os.path.join(staging, "proc"))
        for entry in os.listdir(layout.rootfs):
            os.symlink(os.path.join(layout.rootfs, entry), os.path.join(staging, entry))
        for listing in ("possible", "present", "online"):
            with open(os.path.join(cpu_dir, listing), "w", encoding="utf-8") as handle:
                handle.write("0\n")
        probe = run_guest(setup, name, staging, ["-c", PROBE], timeout=120)
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
    with open(facts_path, encoding="utf-8") as handle:
        return prefix, json.load(handle)


def _smoke_test(current):
    """The emulated Python starts on the default cores and imports LiteRT (their guest roots are made here)."""
    for name in ("cortex-a76", "cortex-a53"):
        core_prefix(current, name)


def load(cache=None):
    """The set-up cache's manifest (with ``layout``); SetupError telling how to set it up otherwise."""
    layout = Layout(os.path.abspath(cache or default_cache()))
    qemu = qemu_binary()
    try:
        with open(layout.manifest, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        manifest = None
    if manifest is None or qemu is None:
        raise SetupError(f"the ARM emulator is not set up in {layout.root}: run `ghostnet bench arm --setup` "
                         "(or `make arm`) first")
    wanted = _wanted(qemu_version(qemu))
    stale = [key for key in wanted if manifest.get(key) != wanted[key]]
    if stale:
        raise SetupError(f"the ARM emulator in {layout.root} was set up for another {', '.join(stale)}: "
                         "rerun `ghostnet bench arm --setup`")
    return {**manifest, "layout": layout, "qemu_path": qemu}


def setup(cache=None, log=print):
    """Install what the emulation needs (idempotent: a complete, current setup returns at once)."""
    layout = Layout(os.path.abspath(cache or default_cache()))
    try:
        current = load(layout.root)
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

    try:
        os.makedirs(layout.root, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"cannot create the cache folder {layout.root} ({exc.strerror}); "
                         "set GHOSTNET_ARM_CACHE to a writable folder") from None
    work = layout.work
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    step("host tools (qemu-user, gcc)", _host_tools, log)
    wanted = _wanted(qemu_version(qemu_binary()))
    step("counting plugin", _build_plugin, layout, work, log)
    step("aarch64 userland", _userland, layout, work, log)
    step("aarch64 LiteRT and numpy wheels", _wheels, layout, work, wanted["ai_edge_litert"])
    shutil.rmtree(layout.cores, ignore_errors=True)
    manifest = {**wanted, "guest_python": GUEST_PYTHON, "wheel_platform": WHEEL_PLATFORM, "seconds": seconds}
    write_atomic(layout.manifest, json.dumps(manifest, indent=2).encode())
    shutil.rmtree(work, ignore_errors=True)
    current = load(layout.root)
    step("emulated Cortex-A76 and Cortex-A53 (LiteRT imports)", _smoke_test, current)
    log(f"arm setup: complete in {time.perf_counter() - started:.0f} s ({layout.root})")
    return current
