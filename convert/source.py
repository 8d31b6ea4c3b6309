"""The model a command works on, as a ``ModelSource``: a Keras model with what is known of how it sees images
(its evaluation transform) and what its outputs are called, from a fresh GhostNet (optionally with weights) or a
saved .keras model."""
import os
import sys
import zipfile
from dataclasses import dataclass, field

from ghostnet_tf.cliutil import check_input_file, check_weights_with_width, first_line
from ghostnet_tf.preprocessing import Transform


@dataclass(frozen=True)
class ModelSource:
    """A Keras model and what travels with it. ``transform``: how it was trained to see images (a
    ``ghostnet train`` model, a ported or carded checkpoint); None: ImageNet's for its input size. ``labels``:
    its class names in output order, if known. ``description``: what reports say about where it came from."""
    model: object
    transform: Transform = None
    labels: tuple = None
    description: dict = field(default_factory=dict)

    def transform_for(self, size):
        """The evaluation transform at ``size``: the recorded one if it is for that size, else ImageNet's."""
        if self.transform is not None and tuple(self.transform.size) == tuple(size):
            return self.transform
        return Transform(tuple(size))

    @classmethod
    def from_file(cls, path, import_modules=()):
        """A saved .keras model with the transform and class names recorded inside it."""
        return load_keras_model(keras_model=path, import_modules=import_modules)


def as_source(model):
    """A ``ModelSource`` for an API that takes either it or a bare Keras model (ImageNet's transform, no names)."""
    return model if isinstance(model, ModelSource) else ModelSource(model, description={"name": model.name})


def load_keras_model(width=None, weights=None, keras_model=None, input_size=None, import_modules=(), family="v1"):
    """A ``ModelSource``. With `width`, a fresh model of `family` (v1, v2, or v3 in its folded inference
    form). ``keras_model`` may use GhostModule or any custom layer registered with
    ``keras.saving.register_keras_serializable`` in one of ``import_modules`` (imported first)."""
    if (width is None) == (keras_model is None):
        raise ValueError("give exactly one model source: --width W [--weights PATH] or --keras-model FILE")
    if keras_model is None:
        from ghostnet_tf import build_model
        from ghostnet_tf.weights import checkpoint_card

        transform, labels = checkpoint_card(weights) if weights not in (None, "imagenet") else (None, None)
        size = tuple(input_size or (transform.size if transform else (224, 224)))
        classes = {"classes": len(labels)} if labels else {}
        model = build_model(family, width, input_shape=(*size, 3), weights=weights, **classes)
        return ModelSource(model, transform, labels, {"name": model.name, "family": family, "width": width,
                                                      "weights": None if weights is None else os.fspath(weights)})
    check_weights_with_width(weights, width)
    path = os.fspath(keras_model)
    if not os.path.lexists(path):
        raise ValueError(f"--keras-model: no such file: {path!r}")
    check_input_file(path, "--keras-model")
    if path.lower().endswith(".keras") and not zipfile.is_zipfile(path):
        raise ValueError(f"--keras-model: {path!r} is not a Keras model file (a .keras file is a zip archive; "
                         "this one is damaged or something else)")
    import importlib

    import keras  # registers the package's layers (ghostnet_tf/__init__.py)

    if import_modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the user's own layer modules usually live next to their data
    for name in import_modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the user's module may fail in any way: a syntax error, a raise, a bad import
            raise ValueError(f"--import-module: importing {name!r} failed: {type(exc).__name__}: "
                             f"{first_line(exc)}") from None

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for bad files and unknown layers
        unknown = unknown_classes(path)
        if unknown:  # Keras' own text names the model, not the layer it could not make
            raise ValueError(f"--keras-model: cannot load {path!r}: it uses the layer class {unknown[0]!r}"
                             f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}, which is not a "
                             "ghostnet_tf or Keras layer; give --import-module MODULE, the Python module that "
                             "defines it with @keras.saving.register_keras_serializable") from None
        raise ValueError(f"--keras-model: cannot load {path!r}: {first_line(exc)[:300]}") from None
    from ghostnet_tf.preprocessing import read_labels, read_transform

    model, folded = deploy_form(model)
    description = {"name": model.name, "keras_model": path, **({"reparameterized": True} if folded else {})}
    return ModelSource(model, read_transform(path), read_labels(path), description)


def deploy_form(model):
    """(model, folded): a GhostNetV3 or RepGhostNet saved in its training form (as `ghostnet train` saves it)
    folded into its inference form, which gives the same outputs with fewer, cheaper layers; any other model
    as it is."""
    from ghostnet_tf.reparam import has_branches

    if not has_branches(layer.name for layer in model.layers):
        return model, False
    from ghostnet_tf import reparameterize

    return reparameterize(model), True


def unknown_classes(path):
    """The classes a .keras file's config names that neither Keras nor a registration can make, in file order
    ([] if the config cannot be read)."""
    import json

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    found = []

    def walk(node):
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if "class_name" in node and "config" in node and not str(node["class_name"]).startswith("__") \
                    and not _resolvable(node):  # "__keras_tensor__" and friends: Keras' own markers
                name = node.get("registered_name") or node["class_name"]
                found.extend([name] if name not in found else [])
            for value in node.values():
                walk(value)

    walk(config)
    return found


def _resolvable(node):
    """Whether Keras can make the serialized object ``node``: one of its own, a registered class, or a class of
    an importable module."""
    import importlib

    import keras

    module, registered = node.get("module"), node.get("registered_name")
    if registered and keras.saving.get_registered_object(registered) is not None:
        return True
    if module is None:
        return keras.saving.get_registered_object(node["class_name"]) is not None
    if module == "keras" or module.startswith("keras."):
        return True
    try:  # Keras imports the module and takes the class from it; this runs only once loading failed
        return hasattr(importlib.import_module(module), node["class_name"])
    except Exception:  # the module may fail in any way, as for --import-module
        return False
