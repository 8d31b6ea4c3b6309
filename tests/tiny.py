"""The tiny GhostModule models of the tests: small enough to convert and train in seconds, built from the
project's own layers (GhostModule, the in-model normalization)."""
TINY_SIZE = (32, 32)


def tiny_model(preprocessing=True, extra_layer=None, classes=10, activation="softmax", size=TINY_SIZE, dropout=0.0):
    """A small network built from GhostModule; ``activation=None`` ends in logits, which carry SQNR and
    relative-error checks on random weights (a near-uniform softmax of random weights carries neither)."""
    import keras
    from keras import layers

    from ghostnet_tf.layers import GhostModule
    from ghostnet_tf.preprocessing import normalization_layer

    inputs = keras.Input((*size, 3), name="image")
    x = normalization_layer()(inputs) if preprocessing else inputs
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    if extra_layer is not None:
        x = extra_layer(x)
    x = GhostModule(16, name="ghost1")(x)
    x = GhostModule(128, use_relu=False, name="ghost2")(x)  # big enough for dynamic-range quantization
    x = layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    x = layers.Dense(classes, activation=activation, name="classifier")(x)
    return keras.Model(inputs, x, name="tiny")


def tiny_classifier(config):
    """A ``ghostnet train`` builder (``builder=``): the tiny model for ``config``'s size and classes, with dropout,
    so the training tests exercise the loop, the checkpoints and resume without a full GhostNet."""
    return tiny_model(classes=config.classes, size=tuple(config.input_size), dropout=config.dropout)
