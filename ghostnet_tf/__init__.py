"""GhostNet (arXiv 1911.11907) for Keras 3, exact to the official/timm network."""
from ghostnet_tf.blocks import make_divisible
from ghostnet_tf.layers import GhostModule
from ghostnet_tf.model import FEATURE_LAYERS, STAGES, GhostNet, feature_model
from ghostnet_tf.preprocessing import IMAGENET_MEAN, IMAGENET_STD, preprocess_input
from ghostnet_tf.profile import format_profile, profile

__all__ = ["GhostModule", "GhostNet", "feature_model", "preprocess_input", "profile", "format_profile",
           "make_divisible", "STAGES", "FEATURE_LAYERS", "IMAGENET_MEAN", "IMAGENET_STD"]
