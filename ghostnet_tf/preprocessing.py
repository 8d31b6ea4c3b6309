"""ImageNet input normalization: the one definition used inside the model, outside it and by the converter."""
import numpy as np
from keras import layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_input(x):
    """RGB in [0, 255] (channels last) -> ImageNet-normalized float32, as the reference was trained.

    Use it with ``GhostNet(include_preprocessing=False)``; the default model does the same inside.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1:] != (3,):
        raise ValueError(f"preprocess_input: expected RGB images with 3 channels last, got shape {x.shape}")
    return (x / 255.0 - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


def normalization_layer(name="preprocessing"):
    """A Keras layer computing ``preprocess_input`` on [0, 255] RGB inside the model."""
    mean = [255.0 * m for m in IMAGENET_MEAN]
    variance = [(255.0 * s) ** 2 for s in IMAGENET_STD]
    return layers.Normalization(mean=mean, variance=variance, name=name)
