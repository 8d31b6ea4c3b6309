"""The one table of named models: timm's names -> family, width, published top-1, ImageNet weights (timm's
hub file and its hash), licence and evaluation transform. ``ghostnet_tf.create_model(name)`` builds one,
``list_models`` lists them; the builders, ``weights="imagenet"``, the benchmark zoo and the command line all
read it.

A table only: it imports no builder and no Keras, so ``ghostnet --help`` and the zoo's listing stay light and
every module may read it."""
import fnmatch
from dataclasses import dataclass, field

from ghostnet_tf.preprocessing import Transform

# timm's hub files: https://huggingface.co/timm/<tag>/resolve/main/model.safetensors
HUB_URL = "https://huggingface.co/timm/{tag}/resolve/main/model.safetensors"
# The families, by their --family name: timm's name prefix and the name of the builder. ghostnet_tf.model_v2.FAMILIES
# maps each to the builder itself by that name; the modules below the builders (weights.py) name it from here.
FAMILY_PREFIX = {"v1": "ghostnet", "v2": "ghostnetv2", "v3": "ghostnetv3", "rep": "repghostnet"}
BUILDER_NAMES = {"v1": "GhostNet", "v2": "GhostNetV2", "v3": "GhostNetV3", "rep": "RepGhostNet"}
IMAGENET_TRANSFORM = Transform((224, 224))  # timm's ghostnet cfg: 224, crop 0.875, bicubic


@dataclass(frozen=True)
class ModelEntry:
    name: str  # timm's name, and the project's everywhere (files, zoo, results)
    family: str  # "v1" | "v2" | "v3" | "rep"
    width: float
    top1: float = None  # published ImageNet top-1 (%), from the family's paper; None where none was published
    pretrained: str = None  # timm's hub tag of the ImageNet weights; None where timm publishes none
    # The hub file's sha256; None: not pinned (it could not be read offline), only completeness is checked.
    sha256: str = None
    license: str = "apache-2.0"  # timm's cfg for every GhostNet (weights: the authors', Huawei, Apache-2.0)
    transform: Transform = field(default=IMAGENET_TRANSFORM)

    @property
    def url(self):
        return HUB_URL.format(tag=self.pretrained) if self.pretrained else None


def _entry(family, width, top1=None, pretrained=False):
    name = f"{FAMILY_PREFIX[family]}_{round(width * 100):03d}"
    return ModelEntry(name, family, width, top1, f"{name}.in1k" if pretrained else None)


# Published ImageNet top-1 (%, 224, single crop), only where the figure is known here (timm's cfgs carry none):
#   GhostNet: Han et al., arXiv 1911.11907, Table 7 (0.5x 66.2, 1.0x 73.9, 1.3x 75.7).
#   GhostNetV2 1.0x: Tang et al., arXiv 2211.12905, Table 2 (75.3).
#   GhostNetV3 1.0x: Liu et al., arXiv 2404.11202 (77.1).
#   RepGhostNet: the authors' release files (ChengpengChen/RepGhost), whose names timm 1.0.x's repghost.py
#   default_cfgs quote, e.g. repghostnet_1_0x_142M_74.22.pth.tar (Chen et al., arXiv 2211.06088).
# Widths and hub files: timm 1.0.31's ghostnet.py and repghost.py default_cfgs (``.in1k`` where it has trained
# weights).
MODELS = {e.name: e for e in (
    _entry("v1", 0.5, 66.2), _entry("v1", 1.0, 73.9, pretrained=True), _entry("v1", 1.3, 75.7),
    _entry("v2", 1.0, 75.3, pretrained=True), _entry("v2", 1.3, pretrained=True), _entry("v2", 1.6, pretrained=True),
    _entry("v3", 0.5), _entry("v3", 1.0, 77.1, pretrained=True), _entry("v3", 1.3), _entry("v3", 1.6),
    *(_entry("rep", width, top1, pretrained=True) for width, top1 in (
        (0.5, 66.95), (0.58, 68.94), (0.8, 72.24), (1.0, 74.22), (1.11, 75.07), (1.3, 76.37), (1.5, 77.45),
        (2.0, 78.81))),
)}


def builder_name(prefix):
    """The builder of timm's name prefix ("ghostnetv2" -> "GhostNetV2"), which the builders' messages name."""
    return next(BUILDER_NAMES[family] for family, known in FAMILY_PREFIX.items() if known == prefix)


def list_models(pattern="*", pretrained=False):
    """The registered names matching the shell-style ``pattern`` (e.g. "ghostnetv2_*"), sorted; with
    ``pretrained`` only those with ImageNet weights."""
    return sorted(name for name, entry in MODELS.items()
                  if fnmatch.fnmatchcase(name, pattern) and (entry.pretrained or not pretrained))


def get_entry(name):
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(MODELS)}")
    return MODELS[name]


def imagenet_entry(name):
    """The entry of ``name`` (e.g. a builder's default name "ghostnetv2_130") if timm publishes ImageNet
    weights for it; ValueError naming the ones that exist otherwise."""
    entry = MODELS.get(name)
    if entry is None or not entry.pretrained:
        family = name.split("_")[0]
        published = ", ".join(list_models(f"{family}_*", pretrained=True)) or "none"
        raise ValueError(f"`weights='imagenet'`: timm publishes no ImageNet weights for {name} (for {family}: "
                         f"{published}); pass weights=None or a checkpoint path made for this width")
    return entry
