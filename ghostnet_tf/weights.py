"""Load the official / timm GhostNet, GhostNetV2, GhostNetV3 and RepGhostNet checkpoints (PyTorch names and
layouts) into the Keras models.

The Keras layer names are the timm module paths, so the mapping is per layer type (`_layer_params`);
the same table converts back (`state_dict_from_model`), which is how `.weights.h5` files written by
`ghostnet port` (ghostnet_tf.port) are read. Every check runs before the first assignment: a failed load
leaves the model untouched. The model builder imports this module, never the other way round.
"""
import os
import pickle
import re
from collections.abc import Mapping
from typing import Callable, NamedTuple

import keras
import numpy as np
from keras import layers

from ghostnet_tf.blocks import make_divisible
from ghostnet_tf.cliutil import MissingDependency, UsageError, check_input_file, first_line
from ghostnet_tf.files import atomic_path, sha256_file
from ghostnet_tf.layers import GhostModule
from ghostnet_tf.registry import BUILDER_NAMES
from ghostnet_tf.reparam import fold_state_dict, has_branches
from ghostnet_tf.spec import LAST_CHANNELS, STEM_CHANNELS

# timm's ImageNet weights come from the hub file of the model's registry entry (ghostnet_tf.registry). Every
# download is checked for completeness (Content-Length) and, where the entry pins it, for its sha256, before it
# enters the cache.
IMAGENET_CACHE_DIR = None  # None: Keras's cache (~/.keras or $KERAS_HOME), subdirectory "models"

FILE_TYPES = ".safetensors, .pth/.pt (needs torch) or .weights.h5 (from `ghostnet port`)"
HEAD_PREFIXES = ("conv_head.", "classifier.")  # absent from include_top=False models
IMAGENET_CLASSES = 1000
# The .weights.h5 root attribute written by `ghostnet port`: the model's JSON config, from which the file is
# read back without the builder.
PORT_CONFIG_ATTR = "ghostnet_tf.config"
SHOWN = 3  # offenders listed per kind in an error message


class _Layout(NamedTuple):
    """How a PyTorch tensor is laid out for a Keras variable, both ways."""
    torch_shape: Callable  # keras shape -> the PyTorch shape
    to_keras: Callable  # (torch array, keras shape) -> keras array
    to_torch: Callable  # keras array -> torch array


_SAME = _Layout(tuple, lambda w, shape: w, lambda k: k)
_CONV = _Layout(lambda s: (s[3], s[2], s[0], s[1]),  # [O, I, kh, kw] <-> [kh, kw, I, O]
                lambda w, shape: w.transpose(2, 3, 1, 0), lambda k: k.transpose(3, 2, 0, 1))
_DEPTHWISE = _Layout(lambda s: (s[2] * s[3], 1, s[0], s[1]),  # [C*m, 1, kh, kw] <-> [kh, kw, C, m]
                     lambda w, shape: w.reshape(shape[2], shape[3], shape[0], shape[1]).transpose(2, 3, 0, 1),
                     lambda k: k.transpose(2, 3, 0, 1).reshape(-1, 1, k.shape[0], k.shape[1]))
_DENSE = _Layout(lambda s: (s[1], s[0]), lambda w, shape: w.T, lambda k: k.T)
_KERNELS = ((layers.DepthwiseConv2D, _DEPTHWISE), (layers.Conv2D, _CONV), (layers.Dense, _DENSE))
_BN_PARAMS = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
              ("moving_variance", "running_var"))
_GHOST_PARTS = (("primary_conv", "primary_conv.0"), ("primary_bn", "primary_conv.1"),
                ("cheap_operation", "cheap_operation.0"), ("cheap_bn", "cheap_operation.1"))


def _layer_params(layer, prefix):
    """(Keras variable, state-dict key, layout) for every variable of `layer`, named under `prefix`."""
    if isinstance(layer, GhostModule):
        for attr, part in _GHOST_PARTS:
            yield from _layer_params(getattr(layer, attr), f"{prefix}.{part}")
    elif isinstance(layer, layers.BatchNormalization):
        for attr, suffix in _BN_PARAMS:
            yield getattr(layer, attr), f"{prefix}.{suffix}", _SAME
    elif kernel := next((layout for cls, layout in _KERNELS if isinstance(layer, cls)), None):
        yield layer.kernel, f"{prefix}.weight", kernel
        if layer.use_bias:
            yield layer.bias, f"{prefix}.bias", _SAME
    elif layer.weights:
        raise ValueError(f"cannot map layer {layer.name!r} ({type(layer).__name__}) to a GhostNet "
                         "checkpoint: is this a ghostnet_tf.GhostNet model?")


def _model_params(model):
    """{state-dict key: (variable, layout)} covering every variable of `model` exactly once."""
    params = {key: (var, layout) for layer in model.layers for var, key, layout in _layer_params(layer, layer.name)}
    if len(params) != len(model.weights) or {id(v) for v, _ in params.values()} != {id(v) for v in model.weights}:
        raise ValueError(f"model {model.name!r}: its variables do not map one-to-one onto state-dict keys")
    return params


def state_dict_from_model(model):
    """The model's weights as a timm/official state dict (PyTorch names and layouts, C-contiguous numpy arrays,
    as safetensors' `save_file` needs: it writes a transposed view's memory, not its values)."""
    return {key: np.ascontiguousarray(layout.to_torch(np.asarray(var.numpy())))
            for key, (var, layout) in _model_params(model).items()}


def infer_width(shapes):
    """The width a GhostNet checkpoint was made for, from {key: shape}; None if the channels do not tell."""
    last, stem = shapes.get("blocks.9.0.conv.weight"), shapes.get("conv_stem.weight")
    if not last or not stem:
        return None
    width = round(last[0] / LAST_CHANNELS, 2)
    if make_divisible(LAST_CHANNELS * width) != last[0] or make_divisible(STEM_CHANNELS * width) != stem[0]:
        return None
    return width


def infer_family(keys):
    """(family, reparameterized) of a checkpoint or model from its state-dict keys: the family is the
    registry's ("v1", "v2", "v3", "rep"); reparameterized tells V3's and RepGhostNet's folded forms."""
    keys = list(keys)
    if any(".fusion_bn." in k for k in keys):  # RepGhost's identity branches
        return "rep", False
    if any(k.endswith(".cheap_operation.bias") for k in keys):  # RepGhost's folded cheap conv (no Sequential)
        return "rep", True
    if has_branches(keys):
        return "v3", False
    if any(k.endswith(".primary_conv.0.bias") for k in keys):  # only V3's folded Ghost modules have a bias
        return "v3", True
    if any(".short_conv." in k for k in keys):  # the DFC attention
        return "v2", False
    return "v1", False


def _builder_call(family, reparameterized, width):
    """How to build a model for a checkpoint, e.g. "GhostNetV3(width=1.0, reparameterized=True)"."""
    extra = ", reparameterized=True" if reparameterized else ""
    return f"{BUILDER_NAMES[family]}(width={width}{extra})"


def infer_classes(shapes):
    """The classifier size of a checkpoint (None without a classifier)."""
    shape = shapes.get("classifier.weight")
    return shape[0] if shape else None


def unwrap_state_dict(obj):
    """The state dict in a loaded checkpoint: bare, under "state_dict" or "model", minus "module." prefixes."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"`weights`: the checkpoint holds a {type(obj).__name__}, not a state dict")
    for key in ("state_dict", "model"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    not_tensors = [k for k, v in obj.items() if not hasattr(v, "shape")]
    if not obj or not_tensors:
        raise ValueError("`weights`: no state dict in the checkpoint (expected a dict of tensors, "
                         f"{{'state_dict': ...}} or {{'model': ...}}; found keys {first_items(obj)})")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def first_items(items):
    """The first few items, joined, and how many there are in all: error messages stay one readable line."""
    items = list(items)
    more = f", ... ({len(items)} in all)" if len(items) > SHOWN else ""
    return ", ".join(str(i) for i in items[:SHOWN]) + more


def _read_safetensors(path):
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except Exception as exc:  # SafetensorError, or numpy refusing a dtype such as bfloat16
        raise ValueError(f"`weights`: cannot read {path} as safetensors: {first_line(exc)}") from None


def checkpoint_card(path):
    """(Transform or None, class names or None) a .safetensors checkpoint records in its metadata
    ("transform": JSON, "classes": JSON list), as ``tools/cifar10_reference.py`` writes them."""
    import json

    from ghostnet_tf.preprocessing import Transform

    if not os.fspath(path).lower().endswith(".safetensors"):
        return None, None
    from safetensors import safe_open

    try:
        with safe_open(os.fspath(path), "np") as f:
            meta = f.metadata() or {}
        transform = Transform.from_json(json.loads(meta["transform"])) if "transform" in meta else None
        classes = tuple(str(c) for c in json.loads(meta["classes"])) if "classes" in meta else None
    except Exception as exc:  # a bad header or metadata that is not what we write
        raise ValueError(f"`weights`: cannot read the metadata of {path}: {first_line(exc)}") from None
    return transform, classes


def torch_load_error(path, exc):
    """The one-line ValueError for an exception of `torch.load(path, weights_only=True)`."""
    if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
        names = sorted(set(re.findall(r"GLOBAL ([\w.]+) was not an allowed global", str(exc))))
        stored = f"Python objects ({', '.join(names)})" if names else "Python objects"
        return ValueError(f"`weights`: {path} stores {stored}, not just tensors, or it is corrupt, so it was not "
                          "unpickled; re-save only the state dict (torch.save(model.state_dict(), path)) from code "
                          "you trust")
    return ValueError(f"`weights`: cannot read {path} as a PyTorch checkpoint: {first_line(exc)}")


def _torch(path):
    """The torch module, which reading the PyTorch checkpoint ``path`` needs."""
    try:
        import torch
    except ImportError:
        raise MissingDependency(f"`weights`: reading the PyTorch checkpoint {path} needs torch: pip install "
                                "'ghostnet-tf[torch]' (or use a .safetensors file, which does not)") from None
    return torch


def require_reader(path):
    """Fail before any work if reading the checkpoint ``path`` needs a package that is not installed."""
    if os.fspath(path).lower().endswith((".pth", ".pt")):
        _torch(path)


def _read_torch(path):
    torch = _torch(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, KeyError, EOFError, ... on bad files
        raise torch_load_error(path, exc) from None
    return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in unwrap_state_dict(checkpoint).items()}


def _read_port_weights(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            config = f.attrs.get(PORT_CONFIG_ATTR)
    except OSError as exc:
        raise ValueError(f"`weights`: cannot read {path} as HDF5: {first_line(exc)}") from None
    if config is None:
        raise ValueError(f"`weights`: {path} was not written by `ghostnet port` (no {PORT_CONFIG_ATTR} attribute); "
                         "load it with model.load_weights() into a model of the same configuration")
    try:
        source = keras.models.model_from_json(config)
        source.load_weights(path)
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError for a damaged file
        raise ValueError(f"`weights`: cannot load {path}: {first_line(exc)}") from None
    return state_dict_from_model(source)


def read_checkpoint(path):
    """{key: numpy array} with timm/official names and PyTorch layouts, from any supported file."""
    path = os.fspath(path)
    try:  # a folder, /dev/zero or a FIFO would fail obscurely, hang, or fill the memory
        check_input_file(path, "`weights`")
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    name = path.lower()
    if name.endswith(".safetensors"):
        return _read_safetensors(path)
    if name.endswith((".pth", ".pt")):
        return _read_torch(path)
    if name.endswith(".weights.h5"):
        return _read_port_weights(path)
    raise ValueError(f"`weights`: unsupported file {path!r}; expected {FILE_TYPES}")


def _skip_classifier(model_keys, shapes):
    """Whether the classifier stays as built: an ImageNet checkpoint into a model with other `classes`."""
    if "classifier.weight" not in model_keys or "classifier.weight" not in shapes:
        return False
    want, have = model_keys["classifier.weight"], shapes["classifier.weight"]
    if want[0] == have[0]:
        return False
    if have[0] == IMAGENET_CLASSES:
        return True
    raise ValueError(f"`classes`: the checkpoint's classifier has {have[0]} classes, the model {want[0]}; "
                     f"build it with classes={have[0]}, or include_top=False for the backbone alone")


def _mismatch_error(path, model, model_shapes, shapes, missing, unexpected, wrong):
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({first_items(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({first_items(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches ("
                        + first_items(f"{k}: checkpoint {shapes[k]} vs model {model_shapes[k]}" for k in wrong) + ")")
    message = f"`weights`: {path} does not fit model {model.name!r}: " + "; ".join(problems)
    if "conv_stem.weight" not in shapes and "blocks.9.0.conv.weight" not in shapes:
        message += "; this is not a GhostNet checkpoint"
    else:
        (family, folded), have, want = infer_family(shapes), infer_width(shapes), infer_width(model_shapes)
        name, model_name = BUILDER_NAMES[family], BUILDER_NAMES[infer_family(model_shapes)[0]]
        form = " in the folded inference form" if folded else ""
        if (family, folded) != infer_family(model_shapes):
            message += (f"; this checkpoint is {name} width {have}{form} (the model is {model_name} width {want}): "
                        f"build {_builder_call(family, folded, have)}")
        elif have is not None and have != want:
            message += (f"; this checkpoint is width {have} (the model is width {want}): "
                        f"build {_builder_call(family, folded, have)}")
    return ValueError(message)


def load_weights(model, path):
    """Load a checkpoint into a `GhostNet`/`GhostNetV2`/`GhostNetV3`/`RepGhostNet` model, strictly: every variable
    is set exactly once. A GhostNetV3 or RepGhostNet checkpoint in timm's training layout also loads into the
    folded form.

    Accepts .safetensors (timm hub), .pth/.pt PyTorch pickles (official release; needs torch), and
    .weights.h5 from `ghostnet port`. A model built with include_top=False skips conv_head and the
    classifier; a model with `classes` other than an ImageNet (1000-class) checkpoint's keeps its
    fresh classifier (transfer learning); any other difference raises ValueError before anything is set.
    """
    assign_state_dict(model, read_checkpoint(path), os.fspath(path))


def assign_state_dict(model, state, source="the state dict"):
    """`load_weights` for a state dict already in memory ({timm key: array}); `source` names it in errors."""
    params = _model_params(model)
    family, folded = infer_family(params)
    if folded and has_branches(state) and infer_family(state) == (family, False):
        state = fold_state_dict(state)  # a training-form checkpoint into the folded model of its family
    shapes = {k: tuple(v.shape) for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    model_shapes = {k: layout.torch_shape(tuple(var.shape)) for k, (var, layout) in params.items()}
    if _skip_classifier(model_shapes, shapes):
        params = {k: p for k, p in params.items() if not k.startswith("classifier.")}
        shapes = {k: s for k, s in shapes.items() if not k.startswith("classifier.")}
    headless = HEAD_PREFIXES if "conv_head.weight" not in model_shapes else ()
    missing = [k for k in params if k not in shapes]
    unexpected = [k for k in shapes if k not in params and not k.startswith(headless)]
    wrong = [k for k in params if k in shapes and shapes[k] != model_shapes[k]]
    if missing or unexpected or wrong:
        raise _mismatch_error(source, model, model_shapes, shapes, missing, unexpected, wrong)
    not_finite = [k for k in params if not np.isfinite(np.asarray(state[k], np.float32)).all()]
    if not_finite:
        raise ValueError(f"`weights`: {source} holds NaN or infinite values in {len(not_finite)} tensors "
                         f"({first_items(not_finite)}): a diverged or damaged checkpoint")
    for key, (var, layout) in params.items():
        var.assign(layout.to_keras(np.asarray(state[key], np.float32), tuple(var.shape)))


def download(url, path, sha256=None):
    """Fetch ``url`` into ``path`` through a temporary file that is renamed into place only when complete
    (as many bytes as the server announced) and, with ``sha256``, of that hash: an interrupted or corrupted
    download never becomes a file a later run trusts."""
    import hashlib
    import http.client
    import sys
    import urllib.request

    digest, size = hashlib.sha256(), 0
    with atomic_path(path) as tmp:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            announced = response.headers.get("Content-Length")
            print(f"downloading {url}" + (f" ({int(announced) / 1e6:.1f} MB)" if announced else ""), file=sys.stderr)
            try:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            except http.client.IncompleteRead as exc:  # the connection dropped before the announced length
                size += len(exc.partial)
        if announced is not None and size != int(announced):
            raise OSError(f"the download stopped after {size} of {announced} bytes")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise OSError(f"the file's sha256 is {digest.hexdigest()}, expected {sha256}: corrupted or replaced")
    return path


def imagenet_weights(entry):
    """The cached path of timm's ImageNet weights of a registry entry (``registry.imagenet_entry(name)``),
    downloading them on first use (and again when a cached file no longer has the pinned hash)."""
    base = IMAGENET_CACHE_DIR or os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(base, "models", f"{entry.pretrained}.safetensors")
    if os.path.isfile(path) and (entry.sha256 is None or sha256_file(path) == entry.sha256):
        return path
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return download(entry.url, path, entry.sha256)
    except Exception as exc:  # URLError, HTTPError, timeouts, a bad hash, a full disk
        raise OSError(f"`weights='imagenet'`: could not download {entry.url} ({first_line(exc)}); "
                      "offline, download it elsewhere and pass weights='/path/to/model.safetensors'") from None


def load_pretrained(model, weights, entry=None):
    """`GhostNet(weights=...)`: "imagenet" (the hub file of the registry ``entry``) or a checkpoint path."""
    load_weights(model, imagenet_weights(entry) if weights == "imagenet" else weights)
