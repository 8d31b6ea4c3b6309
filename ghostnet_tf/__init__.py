"""GhostNet (arXiv 1911.11907), GhostNetV2 and GhostNetV3 for Keras 3, exact to the official/timm networks.

Names are imported on first use so that ``ghostnet --help`` does not start TensorFlow.
"""
import importlib

_EXPORTS = {
    "GhostModule": "ghostnet_tf.layers",
    "GhostNet": "ghostnet_tf.model",
    "GhostNetV2": "ghostnet_tf.model_v2",
    "GhostNetV3": "ghostnet_tf.model_v2",
    "reparameterize": "ghostnet_tf.model_v2",
    "build_model": "ghostnet_tf.model_v2",
    "load_weights": "ghostnet_tf.weights",
    "feature_model": "ghostnet_tf.model",
    "STAGES": "ghostnet_tf.model",
    "FEATURE_LAYERS": "ghostnet_tf.model",
    "make_divisible": "ghostnet_tf.blocks",
    "preprocess_input": "ghostnet_tf.preprocessing",
    "IMAGENET_MEAN": "ghostnet_tf.preprocessing",
    "IMAGENET_STD": "ghostnet_tf.preprocessing",
    "profile": "ghostnet_tf.profiling",
    "format_profile": "ghostnet_tf.profiling",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ghostnet_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__():
    return __all__
