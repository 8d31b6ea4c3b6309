"""The options of a training run, recorded in its report so that ``--resume`` continues with the same ones."""
import math
from dataclasses import dataclass, field

from ghostnet_tf.preprocessing import INTERPOLATIONS
from ghostnet_tf.spec import check_classes, check_crop_pct, check_input_size, check_width

STRATEGIES = ("mirrored", "multi-worker")
# Bounds of a run, so that a typo fails at once instead of exhausting memory or time: ImageNet recipes train
# 300-600 epochs with global batches up to 64k, on at most a few thousand devices; seeds are 32-bit for NumPy.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_DEVICES = 4096
MAX_SEED = 2 ** 31 - 1


@dataclass
class TrainConfig:
    model: str = None  # a registered name (ghostnet_tf.list_models()); sets family and width
    family: str = "v1"
    width: float = 1.0
    input_size: tuple = (32, 32)
    classes: int = 0  # 0: from the data
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    val_split: float = 0.0
    weights: str = None
    freeze_backbone: bool = False
    seed: int = 0
    crop_pct: float = None  # None: default_crop_pct(input_size)
    interpolation: str = "bicubic"
    dropout: float = 0.2
    strategy: str = "mirrored"  # this host's devices, or "multi-worker": the hosts of TF_CONFIG
    devices: int = None  # mirrored: None = every GPU (MirroredStrategy if > 1), else the CPU
    data: str = None
    val: str = None
    class_names: list = field(default_factory=list)


# What --resume takes anew (how long, and where it runs); everything else comes from the run's report.
RESUME_OPTIONS = ("epochs", "strategy", "devices")


def _integer(value, option, low, high):
    """``value`` if it is an integer in [low, high]; ValueError naming ``option`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{option}: expected an integer from {low} to {high:,}, got {value!r}")
    return value


def _finite(value, option, low, high):
    """``value`` if it is a finite number in [low, high); ValueError naming ``option`` otherwise."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and low <= value < high)
    if not ok:
        raise ValueError(f"{option} must be a number in [{low:g}, {high:g}), got {value!r}")
    return value


def check_config(config):
    """Every option of ``config`` in range (the command line's bounds also hold for the Python API and a
    TrainConfig), and its devices against this host and the batch: one line before any work. Sets up the
    devices (``prepare_devices``): nothing before this call may start TensorFlow."""
    _integer(config.epochs, "--epochs", 1, MAX_EPOCHS)
    _integer(config.batch_size, "--batch-size", 1, MAX_BATCH_SIZE)
    _integer(config.seed, "--seed", 0, MAX_SEED)
    check_input_size(config.input_size, "--input-size")
    check_width(config.width, "--width")
    if config.classes != 0:  # 0: from the data
        check_classes(config.classes, "--classes")
    if not (isinstance(config.lr, (int, float)) and config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError(f"--lr must be a positive number, got {config.lr}")
    _finite(config.weight_decay, "--weight-decay", 0, math.inf)
    _finite(config.label_smoothing, "--label-smoothing", 0, 1)
    _finite(config.dropout, "dropout", 0, 1)
    _finite(config.val_split, "--val-split", 0, 1)
    if config.crop_pct is not None:  # None: default_crop_pct(input_size)
        check_crop_pct(_finite(config.crop_pct, "--crop-pct", 0, math.inf), "--crop-pct")  # Transform's rule
    if config.interpolation not in INTERPOLATIONS:
        raise ValueError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, got {config.interpolation!r}")
    if config.val and config.val_split:
        raise ValueError("give --val DIR or --val-split, not both")
    if config.strategy not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {config.strategy!r}")
    if config.strategy == "multi-worker" and config.devices is not None:
        raise ValueError("--devices goes with --strategy mirrored; a multi-worker run uses every GPU of each "
                         "worker (or its CPU)")
    if config.devices is not None:
        _integer(config.devices, "--devices", 1, MAX_DEVICES)
    from ghostnet_tf.training.devices import prepare_devices

    prepare_devices(config.devices, config.batch_size, config.strategy)
