"""Checks of the two files a benchmark needs, done before any device is touched: the model and the binary."""
import os
import struct

from ghostnet_tf.files import sha256_file

# ELF e_machine -> Android ABI name.
ELF_MACHINES = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86"}


def _require_file(path, what):
    if not os.path.exists(path):
        raise ValueError(f"{what} {path} does not exist")
    if not os.path.isfile(path):
        raise ValueError(f"{what} {path} is not a file")


def check_tflite(path):
    """Model facts for the record, after proving the file is a TFLite model the runtime can load.

    The "TFL3" file identifier (bytes 4..8) catches wrong files with a clear message; loading it catches
    truncated or corrupt flatbuffers that still carry the identifier.
    """
    from ghostnet_tf.runtime import make_interpreter

    path = os.fspath(path)
    _require_file(path, "model")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ValueError(f"model {path} is not a TFLite file (no 'TFL3' identifier at bytes 4..8)")
    interpreter = make_interpreter(model_path=path, use_xnnpack=False)  # ValueError naming the file
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    return {"path": os.path.abspath(path), "sha256": sha256_file(path), "size_bytes": os.path.getsize(path),
            "input_shape": [int(d) for d in detail["shape"]], "input_dtype": detail["dtype"].__name__,
            "input_quantization": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None}


def elf_abi(path):
    """The Android ABI an executable is built for, from its ELF header's e_machine; ValueError otherwise."""
    path = os.fspath(path)
    _require_file(path, "benchmark binary")
    with open(path, "rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise ValueError(f"benchmark binary {path} is not an ELF executable "
                         "(expected e.g. android_aarch64_benchmark_model)")
    byte_order = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(byte_order + "H", header[18:20])
    if machine not in ELF_MACHINES:
        raise ValueError(f"benchmark binary {path} is an ELF for machine {machine}, not for an Android ABI "
                         "(aarch64, arm, x86_64, x86)")
    return ELF_MACHINES[machine]
