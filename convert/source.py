"""The Keras model a command works on: a fresh GhostNet (optionally with weights) or a saved .keras model."""
import os


def load_keras_model(width=None, weights=None, keras_model=None, input_size=None):
    """(model, description). ``keras_model`` may use GhostModule or any registered custom layer."""
    if (width is None) == (keras_model is None):
        raise ValueError("give exactly one model source: --width W [--weights PATH] or --keras-model FILE")
    if keras_model is None:
        from ghostnet_tf import GhostNet

        size = tuple(input_size or (224, 224))
        model = GhostNet(width=width, input_shape=(*size, 3), weights=weights)
        return model, {"name": model.name, "width": width, "weights": None if weights is None else os.fspath(weights)}
    if weights is not None:
        raise ValueError("--weights goes with --width; a --keras-model file carries its own weights")
    path = os.fspath(keras_model)
    if not os.path.isfile(path):
        raise ValueError(f"--keras-model: no such file: {path!r}")
    import keras

    import ghostnet_tf.layers  # noqa: F401  registers GhostModule for deserialization

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for bad files and unknown layers
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--keras-model: cannot load {path!r}: {first[:300]}") from None
    return model, {"name": model.name, "keras_model": path}
