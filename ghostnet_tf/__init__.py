"""GhostNet (arXiv 1911.11907), GhostNetV2, GhostNetV3 and RepGhostNet for Keras 3, exact to the official/timm
networks.

Names are imported on first use so that ``ghostnet --help`` does not start TensorFlow (``import keras`` takes
seconds). The package's Keras-serializable classes are registered the moment Keras is imported (now, if it
already is), so ``import ghostnet_tf`` is enough for ``keras.models.load_model`` to read any saved GhostNet.
"""
import importlib
import importlib.abc
import importlib.util
import sys

_EXPORTS = {
    "GhostModule": "ghostnet_tf.layers",
    "GhostNet": "ghostnet_tf.model",
    "GhostNetV2": "ghostnet_tf.model_v2",
    "GhostNetV3": "ghostnet_tf.model_v2",
    "RepGhostNet": "ghostnet_tf.repghost",
    "reparameterize": "ghostnet_tf.model_v2",
    "build_model": "ghostnet_tf.model_v2",
    "create_model": "ghostnet_tf.model_v2",
    "list_models": "ghostnet_tf.registry",
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


# The modules defining Keras-serializable classes; they import nothing from the package, so importing them
# is safe at any point of another import.
_SERIALIZABLE = ("ghostnet_tf.layers", "ghostnet_tf.schedule")


def _register():
    for module in _SERIALIZABLE:
        importlib.import_module(module)


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Finds ``keras`` with the other finders and wraps its loader so that, once the module has run, the
    package's classes are registered. A mere probe (``importlib.util.find_spec("keras")``, as TensorFlow
    does) executes nothing, so the finder stays until Keras is really imported."""

    def __init__(self):
        self.searching = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self.searching:
            return None
        self.searching = True
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader, self)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader, finder):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # keras sees its own loader
        self.loader.exec_module(module)
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        _register()


if "keras" in sys.modules:
    _register()
elif not any(isinstance(finder, _RegisterAfterKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKeras())
