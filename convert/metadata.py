"""TFLite model metadata for image classifiers: what MediaPipe Tasks and the TFLite Task Library read.

Layout of a file written by ``attach`` (the same as the TFLite metadata populator's):

* the model flatbuffer (identifier ``TFL3``) gains one buffer holding a ``ModelMetadata`` flatbuffer
  (identifier ``M001``, schema ``metadata_schema.fbs``) and a ``Model.metadata`` entry named
  ``TFLITE_METADATA`` pointing to it; every other part of the model is kept as it was;
* the associated files (here only the labels file, one class name per line) follow the flatbuffer as a
  stored (uncompressed) zip archive, which TFLite ignores and the metadata readers open by name.

The metadata tables are encoded and decoded by hand with ``flatbuffers``: a table's fields are numbered
by their order in the schema, and a union field takes two numbers, its ``_type`` byte and then its value.
"""
import io
import json
import zipfile
from dataclasses import dataclass

import flatbuffers
from flatbuffers import number_types
from flatbuffers.table import Table
from ai_edge_litert import schema_py_generated as tfl

from convert.opversions import metadata_entries

METADATA_NAME = b"TFLITE_METADATA"
TRANSFORM_NAME = "ghostnet_tf.transform"
_IDENTIFIER = b"M001"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so that attach gives the same bytes every time

# Enum values of metadata_schema.fbs.
_RGB = 1  # ColorSpaceType
_COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES = 1, 2  # ContentProperties union
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


@dataclass(frozen=True)
class ModelInfo:
    """What ``attach`` writes. ``mean``/``std``: the NormalizationOptions of a float32 input, one value or one
    per channel (MediaPipe feeds ``(pixel - mean) / std`` and has no per-channel form; the Task Library has);
    None for an integer input. ``transform``: the evaluation transform, stored as JSON custom metadata."""
    name: str
    description: str
    version: str
    author: str
    license: str
    labels: tuple | None
    mean: float | tuple | None = None
    std: float | tuple | None = None
    transform: dict | None = None
    labels_file: str = "labels.txt"


# --- writing -------------------------------------------------------------------------------------------

def _table(builder, fields):
    """One table from ``{slot: (kind, value)}``; kinds: "offset" (already built), "u8", "u32"."""
    prepend = {"offset": builder.PrependUOffsetTRelativeSlot, "u8": builder.PrependUint8Slot,
               "u32": builder.PrependUint32Slot}
    fields = {slot: field for slot, field in fields.items() if field[1] is not None}
    builder.StartObject(max(fields, default=-1) + 1)
    for slot, (kind, value) in fields.items():
        prepend[kind](slot, value, 0)
    return builder.EndObject()


def _values(value):
    return [float(v) for v in value] if isinstance(value, (tuple, list)) else [float(value)]


def _text(value):
    return "/".join(f"{v:g}" for v in _values(value))


def _vector(builder, offsets):
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder, values):
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(value)
    return builder.EndVector()


def _aligned_bytes(builder, data):
    """A [ubyte] vector whose data starts 16-aligned (the schema's ``force_align: 16``)."""
    builder.Prep(16, len(data))
    return builder.CreateByteVector(data)


def _input_tensor(builder, width, height, mean, std):
    size = _table(builder, {0: ("u32", width), 1: ("u32", height)})
    image = _table(builder, {0: ("u8", _RGB), 1: ("offset", size)})
    content = _table(builder, {0: ("u8", _IMAGE_PROPERTIES), 1: ("offset", image)})
    units = None
    if mean is not None:
        options = _table(builder, {0: ("offset", _floats(builder, _values(mean))),
                                   1: ("offset", _floats(builder, _values(std)))})
        units = _vector(builder, [_table(builder, {0: ("u8", _NORMALIZATION_OPTIONS), 1: ("offset", options)})])
    text = f"RGB image of {width}x{height} pixels"
    if mean is not None:
        text += f", fed as (pixel - {_text(mean)}) / {_text(std)}"
    return _table(builder, {0: ("offset", builder.CreateString("image")), 1: ("offset", builder.CreateString(text)),
                            3: ("offset", content), 4: ("offset", units)})


def _output_tensor(builder, classes, labels_file):
    files = None
    if labels_file is not None:
        labels = _table(builder, {0: ("offset", builder.CreateString(labels_file)),
                                  1: ("offset", builder.CreateString("class names")),
                                  2: ("u8", _TENSOR_AXIS_LABELS)})
        files = _vector(builder, [labels])
    content = _table(builder, {0: ("u8", _FEATURE_PROPERTIES), 1: ("offset", _table(builder, {}))})
    return _table(builder, {0: ("offset", builder.CreateString("probability")),
                            1: ("offset", builder.CreateString(f"Probabilities of the {classes} classes")),
                            3: ("offset", content), 6: ("offset", files)})


def _min_parser_version(info):
    """The version the populator would compute: 1.0.0 covers everything written here but custom_metadata,
    which came with 1.5.0."""
    return "1.5.0" if info.transform is not None else "1.0.0"


def _encode(info, width, height, classes, transform_json):
    builder = flatbuffers.Builder(1024)
    labels_file = info.labels_file if info.labels is not None else None
    inputs = _vector(builder, [_input_tensor(builder, width, height, info.mean, info.std)])
    outputs = _vector(builder, [_output_tensor(builder, classes, labels_file)])
    custom = None
    if transform_json is not None:
        data = _aligned_bytes(builder, transform_json)
        custom = _vector(builder, [_table(builder, {0: ("offset", builder.CreateString(TRANSFORM_NAME)),
                                                    1: ("offset", data)})])
    subgraph = _table(builder, {2: ("offset", inputs), 3: ("offset", outputs), 9: ("offset", custom)})
    texts = {slot: ("offset", builder.CreateString(text)) for slot, text in
             ((0, info.name), (1, info.description), (2, info.version), (4, info.author), (5, info.license),
              (7, _min_parser_version(info)))}
    root = _table(builder, {**texts, 3: ("offset", _vector(builder, [subgraph]))})
    builder.Finish(root, file_identifier=_IDENTIFIER)
    return bytes(builder.Output())


class _MetadataBuffer(tfl.BufferT):
    """The model buffer holding the metadata, packed 16-aligned so that the metadata's own alignment
    (relative to its first byte) is also real alignment in the file."""

    def __init__(self, content):
        super().__init__()
        self.content = content

    def Pack(self, builder):
        data = _aligned_bytes(builder, self.content)
        tfl.BufferStart(builder)
        tfl.BufferAddData(builder, data)
        return tfl.BufferEnd(builder)


def _check(info, classes):
    for field in ("name", "description", "version", "author", "license"):
        if not isinstance(getattr(info, field), str):
            raise ValueError(f"ModelInfo.{field} must be a str")
    if (info.mean is None) != (info.std is None):
        raise ValueError("ModelInfo: give both mean and std, or neither")
    if info.std is not None and (0.0 in _values(info.std) or len(_values(info.mean)) not in (1, 3)
                                 or len(_values(info.mean)) != len(_values(info.std))):
        raise ValueError("ModelInfo: mean and std take one value or one per channel (3), std not 0")
    if info.labels is not None:
        if isinstance(info.labels, str):
            raise ValueError("ModelInfo.labels must be a sequence of class names, not one str")
        if len(info.labels) != classes:
            raise ValueError(f"{len(info.labels)} labels for an output of {classes} classes")
        for label in info.labels:
            if not isinstance(label, str) or not label or "\n" in label or "\r" in label:
                raise ValueError(f"label {label!r}: class names must be non-empty str without line breaks")
        if not info.labels_file or "/" in info.labels_file or "\\" in info.labels_file:
            raise ValueError(f"labels_file {info.labels_file!r}: give a plain file name")


def _transform_json(transform):
    if transform is None:
        return None
    try:
        return json.dumps(transform, sort_keys=True, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ModelInfo.transform is not JSON-serializable: {exc}") from None


def _check_identifier(content):
    if bytes(content[4:8]) != b"TFL3":
        raise ValueError("not a TFLite model (no TFL3 file identifier)")


def attach(content: bytes, info: ModelInfo) -> bytes:
    """The model ``content`` with ``info`` as TFLite metadata (and the labels file appended).

    Refuses a model that already has TFLITE_METADATA rather than replacing it: attach to the file the
    converter wrote. The input must be NHWC [1, H, W, 3] and the output's last dimension the classes."""
    _check_identifier(content)
    try:
        model = tfl.ModelT.InitFromPackedBuf(content, 0)
    except Exception as exc:  # flatbuffers raises whatever indexing a bad offset raises
        raise ValueError(f"corrupt TFLite model: {type(exc).__name__}: {exc}") from None
    if any(entry.name == METADATA_NAME for entry in model.metadata or []):
        raise ValueError("the model already has TFLITE_METADATA; attach to the file without metadata")
    if any(buffer.offset for buffer in model.buffers or []):
        raise ValueError("buffers stored outside the flatbuffer (models over 2 GB) are not supported")
    if len(model.subgraphs or []) != 1:
        raise ValueError(f"expected one subgraph, got {len(model.subgraphs or [])}")
    subgraph = model.subgraphs[0]
    if len(subgraph.inputs) != 1 or len(subgraph.outputs) != 1:
        raise ValueError(f"expected one input and one output, got {len(subgraph.inputs)} and "
                         f"{len(subgraph.outputs)}")
    input_tensor = subgraph.tensors[subgraph.inputs[0]]
    shape = [int(d) for d in input_tensor.shape]
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise ValueError(f"expected an NHWC [1, H, W, 3] input, got {shape}")
    classes = int(subgraph.tensors[subgraph.outputs[0]].shape[-1])
    _check(info, classes)
    is_float = input_tensor.type == tfl.TensorType.FLOAT32
    if is_float != (info.mean is not None):
        raise ValueError("a float32 input needs mean and std (MediaPipe requires NormalizationOptions)"
                         if is_float else "mean/std are for a float32 input; this input is integer")

    metadata = _encode(info, shape[2], shape[1], classes, _transform_json(info.transform))
    model.buffers.append(_MetadataBuffer(metadata))
    model.metadata = [*(model.metadata or []), tfl.MetadataT(name=METADATA_NAME, buffer=len(model.buffers) - 1)]
    builder = flatbuffers.Builder(len(content) + len(metadata) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    packed = builder.Output()
    if info.labels is None:
        return bytes(packed)
    stream = io.BytesIO(packed)
    with zipfile.ZipFile(stream, "a") as archive:  # not a zip yet: appends a new archive after the model
        entry = zipfile.ZipInfo(info.labels_file, date_time=_ZIP_DATE)
        entry.create_system, entry.external_attr = 3, 0o644 << 16
        archive.writestr(entry, "".join(f"{label}\n" for label in info.labels).encode(), zipfile.ZIP_STORED)
    result = stream.getvalue()
    if result[:len(packed)] != packed:  # model bytes that happened to end like a zip archive
        raise ValueError("the model's last bytes look like a zip archive; cannot append the labels file")
    return result


# --- reading -------------------------------------------------------------------------------------------

def _field(table, slot):
    """The absolute position of a field's value, or None when absent."""
    offset = table.Offset(4 + 2 * slot)
    return offset + table.Pos if offset else None


def _read_string(table, slot):
    position = _field(table, slot)
    return None if position is None else table.String(position).decode()


def _read_table(table, slot):
    position = _field(table, slot)
    return None if position is None else Table(table.Bytes, table.Indirect(position))


def _read_scalar(table, slot, flags):
    position = _field(table, slot)
    return 0 if position is None else table.Get(flags, position)


def _read_vector(table, slot):
    """(start, length) of a vector field, or None; the length is checked against the buffer."""
    offset = table.Offset(4 + 2 * slot)
    if not offset:
        return None
    start, length = table.Vector(offset), table.VectorLen(offset)
    if start + length > len(table.Bytes):
        raise ValueError(f"vector of {length} elements past the end of the buffer")
    return start, length


def _read_tables(table, slot):
    vector = _read_vector(table, slot)
    if vector is None:
        return []
    start, length = vector
    return [Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(length)]


def _read_floats(table, slot):
    vector = _read_vector(table, slot)
    if vector is None:
        return None
    start, length = vector
    return [table.Get(number_types.Float32Flags, start + 4 * i) for i in range(length)]


def _read_bytes(table, slot):
    start, length = _read_vector(table, slot) or (0, 0)
    return bytes(table.Bytes[start:start + length])


def _read_input(tensor):
    result = {"name": _read_string(tensor, 0), "color_space": None, "default_size": None, "mean": None, "std": None}
    content = _read_table(tensor, 3)
    if content is not None and _read_scalar(content, 0, number_types.Uint8Flags) == _IMAGE_PROPERTIES:
        image = _read_table(content, 1)
        result["color_space"] = _COLOR_SPACES.get(_read_scalar(image, 0, number_types.Uint8Flags), "UNKNOWN")
        size = _read_table(image, 1)
        if size is not None:
            result["default_size"] = [_read_scalar(size, i, number_types.Uint32Flags) for i in (0, 1)]
    for unit in _read_tables(tensor, 4):
        if _read_scalar(unit, 0, number_types.Uint8Flags) == _NORMALIZATION_OPTIONS:
            options = _read_table(unit, 1)
            result["mean"], result["std"] = _read_floats(options, 0), _read_floats(options, 1)
    return result


def _read_output(tensor):
    labels_file = None
    for file in _read_tables(tensor, 6):
        if _read_scalar(file, 2, number_types.Int8Flags) == _TENSOR_AXIS_LABELS:
            labels_file = _read_string(file, 0)
    return {"name": _read_string(tensor, 0), "labels_file": labels_file}


def _decode(buffer):
    if bytes(buffer[4:8]) != _IDENTIFIER:
        raise ValueError(f"no {_IDENTIFIER.decode()} file identifier")
    root = Table(buffer, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buffer, 0))
    result = {key: _read_string(root, slot) for key, slot in
              (("name", 0), ("description", 1), ("version", 2), ("author", 4), ("license", 5),
               ("min_parser_version", 7))}
    subgraphs = _read_tables(root, 3)
    if len(subgraphs) != 1:
        raise ValueError(f"expected one SubGraphMetadata, got {len(subgraphs)}")
    inputs, outputs = _read_tables(subgraphs[0], 2), _read_tables(subgraphs[0], 3)
    result["input"] = _read_input(inputs[0]) if inputs else None
    result["output"] = _read_output(outputs[0]) if outputs else None
    result["transform"] = None
    for custom in _read_tables(subgraphs[0], 9):
        if _read_string(custom, 0) == TRANSFORM_NAME:
            result["transform"] = json.loads(_read_bytes(custom, 1))
    return result


def _labels(content, name):
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            text = archive.read(name).decode()
    except (zipfile.BadZipFile, KeyError):
        raise ValueError(f"the metadata names {name} but the file has no such associated file") from None
    return text.splitlines()


def read(content: bytes) -> dict | None:
    """The metadata ``attach`` writes, as a dict (labels read from the appended zip); None without
    TFLITE_METADATA. Raises ValueError on a file that is not a TFLite model or has corrupt metadata."""
    content = bytes(content)
    _check_identifier(content)
    try:
        buffer = metadata_entries(content).get(METADATA_NAME.decode())
    except Exception as exc:  # bad offsets surface as IndexError, struct.error, ...
        raise ValueError(f"corrupt TFLite model: {type(exc).__name__}: {exc}") from None
    if buffer is None:
        return None
    try:
        result = _decode(buffer)
    except Exception as exc:
        raise ValueError(f"corrupt TFLITE_METADATA: {type(exc).__name__}: {exc}") from None
    labels_file = result["output"] and result["output"]["labels_file"]
    result["labels"] = _labels(content, labels_file) if labels_file else None
    return result


# --- what ghostnet-tf files carry ----------------------------------------------------------------------

DEFAULT_AUTHOR = "ghostnet-tf"
DEFAULT_LICENSE = "the licence of the weights (not stated; set --license)"


# Caps of the text files options name, so that a wrong path (a disk image, a device) fails at once instead of
# exhausting memory: 30,000 class names of 500 bytes; a list of 5 M images.
MAX_CLASS_NAMES_BYTES = 16 << 20
MAX_IMAGE_LIST_BYTES = 256 << 20


def read_text_file(path, option, max_bytes):
    """The text of a UTF-8 file named by ``option`` (a BOM is dropped); ValueError naming the option and the
    file for a file that is not regular, larger than ``max_bytes`` or not UTF-8."""
    import os

    from ghostnet_tf.cliutil import check_input_file

    path = check_input_file(path, option)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ValueError(f"{option}: {path!r} is {size / 1e6:,.0f} MB; a file of this kind is at most "
                         f"{max_bytes / 1e6:,.0f} MB: check the path")
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ValueError(f"{option}: {path!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                         "save it as UTF-8") from None


def read_labels_file(path, option="--labels"):
    """Class names, one per line (blank lines at the end ignored); ValueError naming the file otherwise."""
    names = read_text_file(path, option, MAX_CLASS_NAMES_BYTES).splitlines()
    while names and not names[-1].strip():
        names.pop()
    if not names or any(not name.strip() for name in names):
        raise ValueError(f"{option}: {path!r} needs one non-empty class name per line")
    return tuple(names)


def default_labels(classes, own=None):
    """The class names a file gets without --labels: the model's own (saved by ``ghostnet train`` or carried
    by the checkpoint), else ImageNet's for a 1000-class output, else none."""
    if own:
        return tuple(own)
    if classes == 1000:
        from ghostnet_tf.preprocessing import imagenet_classes

        return imagenet_classes()
    return None


def model_info(name, quantize, io, pixels, size, transform, labels, author=None, license=None):
    """The metadata of a converted classifier. Float inputs declare the normalization MediaPipe applies:
    none (mean 0, std 1) for a model that normalizes inside, ImageNet's per channel otherwise."""
    from ghostnet_tf.cli import package_version
    from ghostnet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD

    mean = std = None
    if io == "float32":
        mean, std = (0.0, 1.0) if pixels else (tuple(255 * m for m in IMAGENET_MEAN),
                                               tuple(255 * s for s in IMAGENET_STD))
    feed = ("RGB pixels in [0, 255]" if pixels or io == "uint8" else
            "ImageNet-normalized RGB" if io == "float32" else "ImageNet-normalized RGB, quantized")
    return ModelInfo(
        name=name, version=package_version(), author=author or DEFAULT_AUTHOR, license=license or DEFAULT_LICENSE,
        description=f"{name}: image classifier, {size[0]}x{size[1]} {feed}; {quantize} weights and "
                    f"{io} input/output; converted by ghostnet-tf",
        labels=labels, mean=mean, std=std, transform=transform.to_json())


@dataclass(frozen=True)
class FileFacts:
    """How to feed a .tflite file, from its metadata alone: its evaluation transform, whether it takes
    [0, 255] pixels, its class names. Files without metadata: ImageNet's transform, pixels, no names."""
    transform: object  # ghostnet_tf.preprocessing.Transform, or None without metadata
    pixels: bool
    labels: list | None
    metadata: dict | None


def tflite_feed(path, interpreter):
    """(input size, transform, pixels, labels) to feed the .tflite file ``path`` alone: its input size, and the
    transform, normalization and class names its metadata records (ImageNet's transform at that size, raw
    pixels and no names without metadata)."""
    from ghostnet_tf.preprocessing import Transform

    from convert.inference import check_feed

    check_feed(interpreter, where=f"--tflite: {path}")
    shape = [int(s) for s in interpreter.get_input_details()[0]["shape"]]
    if len(shape) != 4 or shape[3] != 3:
        raise ValueError(f"--tflite: {path} takes input of shape {shape}, not RGB images (1, H, W, 3)")
    size = tuple(shape[1:3])
    with open(path, "rb") as handle:
        facts = file_facts(handle.read())
    transform = facts.transform if facts.transform and facts.transform.size == size else Transform(size)
    return size, transform, facts.pixels, facts.labels


def file_facts(content):
    from ghostnet_tf.preprocessing import Transform

    found = read(content)
    if found is None:
        return FileFacts(None, True, None, None)
    transform = found.get("transform")
    mean = (found.get("input") or {}).get("mean")
    pixels = mean is None or len(mean) == 1  # integer input, or one mean (0) for a model normalizing inside
    return FileFacts(Transform.from_json(transform) if transform else None, pixels, found.get("labels"), found)
