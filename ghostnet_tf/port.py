"""``ghostnet port``: a checkpoint converted once into Keras weights (.weights.h5) or a whole .keras model.

Above both the builder and the checkpoint reader: it builds a GhostNet and fills it from a state dict."""
import os

from ghostnet_tf.cliutil import check_distinct_paths
from ghostnet_tf.files import atomic_path
from ghostnet_tf.model_v2 import FAMILIES
from ghostnet_tf.preprocessing import write_labels, write_transform
from ghostnet_tf.weights import (IMAGENET_CLASSES, PORT_CONFIG_ATTR, assign_state_dict, checkpoint_card, first_items,
                                 infer_classes, infer_family, infer_width, read_checkpoint)

PORT_SUFFIXES = (".weights.h5", ".keras")


def port_checkpoint(src, output, width=None):
    """Convert a checkpoint once into Keras weights (.weights.h5) or a whole .keras model of the checkpoint's
    family and form; returns (width, classes, builder name). Written to a temporary file beside `output`, then
    renamed: never half-written. A .keras output keeps what the checkpoint records of how it sees images
    (input size, crop, interpolation) and its class names."""
    output, src = os.fspath(output), os.fspath(src)
    check_distinct_paths(src=src, output=output)  # the input is read whole first, but it would be gone
    if not output.lower().endswith(PORT_SUFFIXES):
        raise ValueError(f"`output` must end in .weights.h5 or .keras, got {output!r}")
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise ValueError(f"`output`: no such directory {directory!r}")
    state = read_checkpoint(src)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    if "conv_stem.weight" not in shapes or "blocks.9.0.conv.weight" not in shapes:
        raise ValueError(f"`weights`: {src} is not a GhostNet checkpoint (no conv_stem.weight or "
                         f"blocks.9.0.conv.weight among its keys {first_items(shapes)})")
    width = width or infer_width(shapes)
    if width is None:
        raise ValueError(f"`width`: cannot tell the width of {src} from its channels; pass --width")
    classes = infer_classes(shapes) or IMAGENET_CLASSES
    family, reparameterized = infer_family(shapes)
    options = {"reparameterized": True} if reparameterized else {}
    transform, labels = checkpoint_card(src)
    if labels is not None and len(labels) != classes:
        raise ValueError(f"`weights`: {src} names {len(labels)} classes in its metadata but its classifier has "
                         f"{classes}")
    if transform is not None:
        options["input_shape"] = (*transform.size, 3)
    builder = FAMILIES[family]
    model = builder(width=width, classes=classes, **options)
    assign_state_dict(model, state, src)
    with atomic_path(output) as tmp:
        if output.lower().endswith(".keras"):
            model.save(tmp)
            if transform is not None:
                write_transform(tmp, transform)
            if labels is not None:
                write_labels(tmp, labels)
        else:
            model.save_weights(tmp)
            import h5py

            with h5py.File(tmp, "a") as f:
                f.attrs[PORT_CONFIG_ATTR] = model.to_json()
    return width, classes, builder.__name__
