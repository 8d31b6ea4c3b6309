"""The options of a training run, recorded in its report so that ``--resume`` continues with the same ones."""
import math
from dataclasses import dataclass, field

STRATEGIES = ("mirrored", "multi-worker")


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


def check_config(config):
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError("--epochs and --batch-size must be >= 1")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise ValueError(f"--lr must be a positive number, got {config.lr}")
    if config.weight_decay < 0 or not 0 <= config.label_smoothing < 1:
        raise ValueError("--weight-decay must be >= 0 and --label-smoothing in [0, 1)")
    if not 0 <= config.val_split < 1:
        raise ValueError(f"--val-split must be in [0, 1), got {config.val_split}")
    if config.val and config.val_split:
        raise ValueError("give --val DIR or --val-split, not both")
    if config.strategy not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {config.strategy!r}")
    if config.strategy == "multi-worker" and config.devices is not None:
        raise ValueError("--devices goes with --strategy mirrored; a multi-worker run uses every GPU of each "
                         "worker (or its CPU)")
