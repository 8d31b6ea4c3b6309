"""The comparison set: GhostNet widths and the keras.applications models a mobile engineer would pick
instead, each built locally (no download) as a model taking RGB in [0, 255]."""
from dataclasses import dataclass

from ghostnet_tf.spec import default_name

# Published ImageNet top-1 (%, 224x224, single crop), each from the model's own paper:
#   GhostNet: Han et al., arXiv 1911.11907, Table 7 (0.5x 66.2, 1.0x 73.9, 1.3x 75.7).
#   MobileNetV2 1.0: Sandler et al., arXiv 1801.04381, Table 4 (72.0).
#   MobileNetV3: Howard et al., arXiv 1905.02244, Table 3 (Large 1.0 75.2, Large 0.75 73.3, Small 1.0 67.4).
#   GhostNetV2 1.0x: Tang et al., arXiv 2211.12905, Table 2 (75.3).
#   GhostNetV3 1.0x: Liu et al., arXiv 2404.11202 (77.1).
#   timm's pretrained configs (ghostnetv2_100.in1k, ghostnetv3_100.in1k) carry no accuracy figures.
GHOSTNET_TOP1 = {0.5: 66.2, 1.0: 73.9, 1.3: 75.7}
GHOSTNET_FAMILIES = {"ghostnet": "v1", "ghostnetv2": "v2", "ghostnetv3": "v3"}  # family -> ghostnet_tf.build_model


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
        if self.family in GHOSTNET_FAMILIES:  # GhostNetV3 in its folded inference form
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


def ghostnet_entry(width):
    return ZooModel(default_name(width), f"GhostNet {width:.1f}x", "ghostnet", width, GHOSTNET_TOP1.get(width))


ZOO = {m.name: m for m in (
    ghostnet_entry(0.5), ghostnet_entry(1.0), ghostnet_entry(1.3),
    ZooModel("mobilenet_v2_100", "MobileNetV2 1.0", "mobilenet_v2", 1.0, 72.0),
    ZooModel("mobilenet_v3_small_100", "MobileNetV3-Small 1.0", "mobilenet_v3_small", 1.0, 67.4),
    ZooModel("mobilenet_v3_large_075", "MobileNetV3-Large 0.75", "mobilenet_v3_large", 0.75, 73.3),
    ZooModel("mobilenet_v3_large_100", "MobileNetV3-Large 1.0", "mobilenet_v3_large", 1.0, 75.2),
    # Not in the default set, to keep `make run` short (4 more conversions): --models ghostnetv2_100,...
    ZooModel("ghostnetv2_100", "GhostNetV2 1.0x", "ghostnetv2", 1.0, 75.3, default=False),
    ZooModel("ghostnetv3_100", "GhostNetV3 1.0x", "ghostnetv3", 1.0, 77.1, default=False),
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
