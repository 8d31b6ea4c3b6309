"""The model a run trains: made by an injected builder (a callable, a registered name, or the configured
family and width), started from --weights, compiled with AdamW and the warm-up/cosine schedule."""
WARMUP_EPOCHS = 1.0


def ghostnet_builder(config):
    """The default builder: the registered ``config.model``, else a GhostNet of ``config.family`` at
    ``config.width``, for ``config.classes`` classes; GhostNetV3 in its multi-branch training form."""
    from ghostnet_tf.model_v2 import build_model, create_model

    kwargs = {"input_shape": (*config.input_size, 3), "classes": config.classes, "dropout_rate": config.dropout,
              "reparameterized": False}
    if config.model:
        return create_model(config.model, **kwargs)
    return build_model(config.family, config.width, **kwargs)


def resolve_builder(builder, config, width_given=False):
    """``builder``: a callable ``(config) -> uncompiled Keras model``, a registered name (stored as
    ``config.model``) or None (``config.model``, else ``config.family`` at ``config.width``). A registered name
    sets ``config.family`` and ``config.width`` from the registry; ``width_given``: the caller also set either."""
    from ghostnet_tf.registry import get_entry

    if callable(builder):
        return builder
    if builder is not None:
        config.model = builder
    if config.model:
        try:
            entry = get_entry(config.model)
        except ValueError as exc:
            raise ValueError(f"--model: {exc}") from None
        if width_given:
            raise ValueError(f"--model {entry.name} names the family and width; drop --family/--width")
        config.family, config.width = entry.family, entry.width
    return ghostnet_builder


def warmup_cosine(peak, warmup_steps, total_steps):
    from ghostnet_tf.schedule import WarmupCosine

    return WarmupCosine(peak, warmup_steps, total_steps)


def compile_model(config, steps_per_epoch, builder):
    """``builder(config)`` -> an uncompiled Keras model; with --weights, --freeze-backbone and the optimizer."""
    import keras

    from ghostnet_tf.training.checkpoints import load_checkpoint

    model = builder(config)
    if config.weights:
        load_checkpoint(model, config.weights)
    if config.freeze_backbone:
        for layer in model.layers:
            # Frozen layers (BatchNorm included) run in inference mode in Keras 3.
            layer.trainable = layer.name in ("conv_head", "classifier")
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(WARMUP_EPOCHS * steps_per_epoch), total // 2)
    optimizer = keras.optimizers.AdamW(learning_rate=warmup_cosine(config.lr, warmup, total),
                                       weight_decay=config.weight_decay)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return model
