"""What one conversion is asked to do, as one frozen object: the CLI, the Python API and ``bench compare``
build a ``ConversionSpec``, and its ``key()`` names the converted file in a cache."""
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field

from convert import CALIBRATED_MODES, DEFAULT_CALIBRATION_STEPS, DEFAULT_EVAL_COUNT, IO_TYPES, QUANTIZE_MODES
from convert.opversions import DEFAULT_MIN_RUNTIME, parse_version
from ghostnet_tf.spec import check_input_size


@dataclass(frozen=True)
class FileOptions:
    """What the written file carries besides the model, and the oldest runtime that must load it.
    ``labels``: class names in output order (None: the model source's, else ``metadata.default_labels``)."""
    labels: tuple = None
    author: str = None
    license: str = None
    min_runtime: str = DEFAULT_MIN_RUNTIME


@dataclass(frozen=True)
class ConversionSpec:
    """Precision, I/O, calibration, held-out images, rewrites, float ops and file options of a conversion.

    ``io`` None: uint8 for int8 models taking [0, 255] pixels, int8 for the others, float32 otherwise.
    ``calibration`` / ``eval_images``: a folder, a .npy/.npz file, an array, or None for the built-in sets.
    ``rewrite`` None: the precision's default rewrites (``convert.rewrites``). ``keep_float``: a
    ``convert.mixed.KeepFloat`` or None. Invalid combinations raise ValueError when the spec is made."""
    quantize: str = "int8"
    io: str = None
    calibration: object = None
    calibration_steps: int = DEFAULT_CALIBRATION_STEPS
    eval_images: object = None
    eval_count: int = DEFAULT_EVAL_COUNT
    input_size: tuple = None
    rewrite: tuple = None
    keep_float: object = None
    per_layer: bool = False
    file: FileOptions = field(default_factory=FileOptions)

    def __post_init__(self):
        if self.quantize not in QUANTIZE_MODES:
            raise ValueError(f"--quantize: expected one of {', '.join(QUANTIZE_MODES)}, got {self.quantize!r}")
        if self.io is not None and self.io not in IO_TYPES:
            raise ValueError(f"--io: expected one of {', '.join(IO_TYPES)}, got {self.io!r}")
        if self.quantize != "int8" and self.io not in (None, "float32"):
            raise ValueError(f"--io {self.io}: integer inputs/outputs need --quantize int8 "
                             f"(got --quantize {self.quantize})")
        if self.keep_float is not None and self.quantize != "int8":
            raise ValueError(f"--keep-float: selective float ops are for --quantize int8 "
                             f"(got --quantize {self.quantize})")
        if self.per_layer and self.quantize != "int8":
            raise ValueError("--per-layer: the per-layer quantization error needs --quantize int8")
        parse_version(self.file.min_runtime)
        check_held_out(self.calibration, self.eval_images)
        if self.input_size is not None:
            object.__setattr__(self, "input_size", check_input_size(self.input_size))
        if self.rewrite is not None:
            object.__setattr__(self, "rewrite", tuple(self.rewrite))

    @property
    def calibrated(self):
        """Whether the mode quantizes activations, so calibration images go into the file (--per-layer needs
        int8, which does)."""
        return self.quantize in CALIBRATED_MODES

    def key(self):
        """A short hash of everything that changes the file or its report. Paths count by where they point,
        not by their contents (a cache of converted files keys their inputs' contents itself); arrays by value;
        calibration only where the mode calibrates."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["calibration"] = _data_key(self.calibration) if self.calibrated else None
        fields["calibration_steps"] = self.calibration_steps if self.calibrated else None
        fields["eval_images"] = _data_key(self.eval_images)
        fields["keep_float"] = None if self.keep_float is None else dataclasses.asdict(self.keep_float)
        fields["file"] = dataclasses.asdict(self.file)
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()[:16]


def io_dtype(io):
    """The TensorFlow dtype of an ``io`` name (converter and quantizer alike)."""
    import tensorflow as tf

    return {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io]


def _data_key(images):
    if images is None or isinstance(images, (str, os.PathLike)):
        return images and os.path.realpath(images)
    import numpy as np

    array = np.ascontiguousarray(getattr(images, "images", images))
    return f"{array.dtype}{array.shape}:" + hashlib.sha256(array.tobytes()).hexdigest()


def check_held_out(calibration, eval_images):
    """Fidelity measured on calibration images flatters int8: refuse overlapping folders or files."""
    paths = [p for p in (calibration, eval_images) if isinstance(p, (str, os.PathLike))]
    if len(paths) < 2:
        return
    a, b = (os.path.realpath(p) for p in paths)
    if os.path.commonpath([a, b]) in (a, b):
        raise ValueError(f"--eval-images: {eval_images!r} overlaps the --calibration images {calibration!r}; "
                         "fidelity must be measured on held-out images")
