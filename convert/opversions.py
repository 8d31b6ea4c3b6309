"""Which runtimes can load a .tflite file: its ops' versions and the ``min_runtime_version`` the converter
records from them, read from the flatbuffer itself, and the check behind ``ghostnet convert --min-runtime``.

A runtime older than the file's minimum refuses it at load time ("Didn't find op for builtin opcode
'FULLY_CONNECTED' version '12'"), so the floor is checked before a file is written."""

# tflite-runtime 2.14.0: still what many ARM boards and older apps ship, and the last release with wheels
# for Python 3.11 and numpy 1 (ai-edge-litert replaced it).
DEFAULT_MIN_RUNTIME = "2.14.0"
# From this version on dynamic-range FULLY_CONNECTED is per-channel (op version 12); per-tensor is version 9.
PER_CHANNEL_DENSE_SINCE = "2.17.0"


def parse_version(text, where="--min-runtime"):
    """'2.14' or '2.14.0' -> (2, 14, 0); ValueError in one line otherwise."""
    parts = str(text).strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{where}: expected a version such as 2.14 or 2.14.0, got {text!r}")
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


def _model(content):
    from ai_edge_litert import schema_py_generated as schema

    return schema, schema.Model.GetRootAs(bytearray(content) if isinstance(content, memoryview) else content, 0)


def op_versions(content):
    """{op name: highest version used} of every operator code of the model."""
    schema, model = _model(content)
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    versions = {}
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # codes > 127 live in the new field
        name = (code.CustomCode() or b"").decode() if builtin == schema.BuiltinOperator.CUSTOM else names.get(
            builtin, f"BUILTIN_{builtin}")
        versions[name] = max(versions.get(name, 0), code.Version())
    return dict(sorted(versions.items()))


def metadata_entries(content):
    """{name: bytes} of the model's ``metadata`` list (min_runtime_version, CONVERSION_METADATA, ...)."""
    _, model = _model(content)
    entries = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        buffer = model.Buffers(entry.Buffer())
        if buffer.Offset() > 1:  # data stored after the flatbuffer (models over 2 GB)
            entries[entry.Name().decode()] = bytes(content[buffer.Offset():buffer.Offset() + buffer.Size()])
            continue
        data = buffer.DataAsNumpy()
        entries[entry.Name().decode()] = b"" if isinstance(data, int) else data.tobytes()
    return entries


def min_runtime_version(content):
    """The minimum TFLite runtime version the converter recorded in the file ('2.4.0'), or None."""
    value = metadata_entries(content).get("min_runtime_version")
    return value.split(b"\0", 1)[0].decode() if value else None


def check_min_runtime(content, floor):
    """ValueError in one line when the file needs a newer runtime than ``floor``."""
    needed = min_runtime_version(content)
    if needed and parse_version(needed, "min_runtime_version") > parse_version(floor):
        raise ValueError(f"--min-runtime {floor}: the converted file needs TFLite runtime {needed} or newer "
                         f"(ops: {', '.join(f'{op} v{v}' for op, v in op_versions(content).items())}); "
                         f"nothing written; raise --min-runtime or choose another --quantize mode")


def per_tensor_dense(floor):
    """Whether dynamic-range dense layers must be quantized per tensor for runtimes at ``floor``."""
    return parse_version(floor) < parse_version(PER_CHANNEL_DENSE_SINCE)
