"""The ARM cores qemu-user can emulate, and the /proc/cpuinfo each one's guest needs to see.

qemu 7.2 passes the host's x86 /proc/cpuinfo through to an aarch64 guest; LiteRT's cpuinfo library then
crashes or, silently, runs without XNNPACK. So every core gets a fake one-core cpuinfo with its real MIDR
(which picks XNNPACK's micro-architecture-tuned kernels) and the features qemu really gives it (AT_HWCAP).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Core:
    name: str  # qemu's -cpu name
    midr: int  # MIDR_EL1 as qemu 7.2 sets it (target/arm/cpu64.c)
    note: str


CORES = {c.name: c for c in (
    Core("cortex-a76", 0x414FD0B1, "big core of 2019 flagships (Kirin 980, Snapdragon 855): the GhostNet paper's phone class"),
    Core("cortex-a53", 0x410FD034, "in-order little core of most budget phones"),
    Core("cortex-a72", 0x410FD083, "big core of 2016 phones and the Raspberry Pi 4"),
    Core("cortex-a57", 0x411FD070, "big core of 2015 phones"),
    Core("cortex-a35", 0x411FD040, "small in-order core"),
    Core("neoverse-n1", 0x414FD0C1, "server core derived from Cortex-A76"),
)}

# Linux arm64 AT_HWCAP / AT_HWCAP2 bit -> the name /proc/cpuinfo prints (arch/arm64/kernel/cpuinfo.c).
HWCAP_NAMES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
               "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2_NAMES = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm "
                "svebf16 i8mm bf16 dgh rng bti mte").split()


def core(name):
    """The core called ``name``; ValueError with the choices (and why not ``max``) otherwise."""
    if name in CORES:
        return CORES[name]
    if name.split(",")[0] == "max":
        raise ValueError("--cpu max is refused: qemu 7.2's 'max' core (SME emulation) computes wrong int8 results; "
                         f"name a real core: {', '.join(CORES)}")
    raise ValueError(f"--cpu: unknown core {name!r}; choose from {', '.join(CORES)}")


def features(hwcap, hwcap2):
    """Feature names of the AT_HWCAP/AT_HWCAP2 words, in /proc/cpuinfo's order."""
    return ([n for bit, n in enumerate(HWCAP_NAMES) if hwcap >> bit & 1]
            + [n for bit, n in enumerate(HWCAP2_NAMES) if hwcap2 >> bit & 1])


def cpuinfo_text(name, feature_names):
    """A one-core /proc/cpuinfo for the core, in the Linux arm64 format."""
    midr = CORES[name].midr
    return (f"processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: {' '.join(feature_names)}\n"
            f"CPU implementer\t: 0x{midr >> 24:02x}\nCPU architecture: 8\nCPU variant\t: 0x{midr >> 20 & 0xF:x}\n"
            f"CPU part\t: 0x{midr >> 4 & 0xFFF:03x}\nCPU revision\t: {midr & 0xF}\n\n")
