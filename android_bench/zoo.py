"""The comparison set: GhostNet widths and the keras.applications models a mobile engineer would pick
instead, each built locally (no download) as a model taking RGB in [0, 255]."""
from dataclasses import dataclass

from ghostnet_tf.registry import FAMILY_PREFIX, MODELS
from ghostnet_tf.spec import default_name

# Published ImageNet top-1 (%, 224x224, single crop), each from the model's own paper (GhostNets: their registry
# entries, ghostnet_tf/registry.py):
#   MobileNetV2 1.0: Sandler et al., arXiv 1801.04381, Table 4 (72.0).
#   MobileNetV3: Howard et al., arXiv 1905.02244, Table 3 (Large 1.0 75.2, Large 0.75 73.3, Small 1.0 67.4).
GHOSTNET_FAMILIES = {prefix: family for family, prefix in FAMILY_PREFIX.items()}  # zoo family -> registry family
FAMILY_LABELS = {"v1": "GhostNet", "v2": "GhostNetV2", "v3": "GhostNetV3", "rep": "RepGhostNet"}


@dataclass(frozen=True)
class ZooModel:
    name: str  # stable id, used on the command line and in the results
    label: str  # for tables and plots
    family: str  # "ghostnet" | "ghostnetv2" | "ghostnetv3" | "mobilenet_v2" | "mobilenet_v3_small" | ...
    width: float  # GhostNet width or MobileNet alpha
    top1: float | None  # published ImageNet top-1, None where nothing was published
    default: bool = True  # in the set `ghostnet bench compare` runs without --models

    def build(self, input_size, weights=None):
        """The Keras model at ``input_size`` (H, W), taking RGB pixels in [0, 255]."""
        import keras

        shape = (*input_size, 3)
        if self.family in GHOSTNET_FAMILIES:  # GhostNetV3 and RepGhostNet in their folded inference form
            from ghostnet_tf import build_model

            return build_model(GHOSTNET_FAMILIES[self.family], self.width, input_shape=shape, weights=weights,
                               name=self.name)
        apps = keras.applications
        if self.family == "mobilenet_v2":
            # MobileNetV2 has no built-in preprocessing: scale [0, 255] to its [-1, 1] in the graph.
            inputs = keras.Input(shape, name="image")
            x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocessing")(inputs)
            return apps.MobileNetV2(input_tensor=x, alpha=self.width, weights=weights, name=self.name)
        build = apps.MobileNetV3Small if self.family == "mobilenet_v3_small" else apps.MobileNetV3Large
        return build(input_shape=shape, alpha=self.width, weights=weights, include_preprocessing=True,
                     name=self.name)


def ghostnet_entry(width, family="v1", default=True):
    """The zoo row of a GhostNet: a registered width carries its published top-1; any other width builds too."""
    name = default_name(width, FAMILY_PREFIX[family])
    top1 = MODELS[name].top1 if name in MODELS else None
    return ZooModel(name, f"{FAMILY_LABELS[family]} {width:.1f}x", FAMILY_PREFIX[family], width, top1, default)


ZOO = {m.name: m for m in (
    ghostnet_entry(0.5), ghostnet_entry(1.0), ghostnet_entry(1.3),
    ZooModel("mobilenet_v2_100", "MobileNetV2 1.0", "mobilenet_v2", 1.0, 72.0),
    ZooModel("mobilenet_v3_small_100", "MobileNetV3-Small 1.0", "mobilenet_v3_small", 1.0, 67.4),
    ZooModel("mobilenet_v3_large_075", "MobileNetV3-Large 0.75", "mobilenet_v3_large", 0.75, 73.3),
    ZooModel("mobilenet_v3_large_100", "MobileNetV3-Large 1.0", "mobilenet_v3_large", 1.0, 75.2),
    # Not in the default set, to keep `make run` short (4 more conversions): --models ghostnetv2_100,...
    ghostnet_entry(1.0, "v2", default=False), ghostnet_entry(1.0, "v3", default=False),
    *(ghostnet_entry(width, "rep", default=False) for width in (0.5, 1.0, 1.3)),
)}
DEFAULT_BASELINE = "mobilenet_v3_large_075"  # closest in published top-1 to GhostNet 1.0x
QUICK_MODELS = ("ghostnet_100", "mobilenet_v3_large_075")  # the smoke run of `bench compare --quick`


def select(names=None, widths=None):
    """The zoo entries for ``names`` (default: the default set), with the GhostNet widths replaced by ``widths``."""
    zoo = dict(ZOO)
    if widths:
        zoo = {k: v for k, v in zoo.items() if v.family != "ghostnet"}
        zoo.update({m.name: m for m in map(ghostnet_entry, widths)})
    if not names:
        return [m for m in zoo.values() if m.default]
    unknown = [n for n in names if n not in zoo]
    if unknown:
        raise ValueError(f"--models: unknown model {', '.join(unknown)}; choose from {', '.join(zoo)}")
    return [zoo[n] for n in names]
