"""Train or fine-tune a GhostNet (any registered family, or any model an injected builder makes) on an image
folder (one sub-folder per class) or a ``.npz`` of images and labels.

A streaming ``tf.data`` pipeline (``data``), the model from a builder with AdamW and linear warm-up and cosine
decay (``models``, ``ghostnet_tf.schedule``), Keras' own ``fit`` on this host's devices or across the workers
of ``TF_CONFIG`` (``devices``, ``loop``), and per epoch the checkpoints, log and report that ``--resume``
continues from (``checkpoints``)."""
from ghostnet_tf.training.checkpoints import Run, load_checkpoint, load_model, output_paths, save_model
from ghostnet_tf.training.config import TrainConfig
from ghostnet_tf.training.data import augment, make_dataset, read_samples, split
from ghostnet_tf.training.devices import configure_devices, read_cluster
from ghostnet_tf.training.loop import train
from ghostnet_tf.training.models import compile_model, ghostnet_builder, resolve_builder

__all__ = ["Run", "TrainConfig", "augment", "compile_model", "configure_devices", "ghostnet_builder",
           "load_checkpoint", "load_model", "make_dataset", "output_paths", "read_cluster", "read_samples",
           "resolve_builder", "save_model", "split", "train"]
