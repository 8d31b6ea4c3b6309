"""``train(...)``: the checks, then Keras' own ``fit`` of the injected model under the run's strategy."""
import contextlib
import os
import sys
import warnings

from ghostnet_tf.preprocessing import Transform, default_crop_pct
from ghostnet_tf.training.checkpoints import (Run, check_inputs, check_model, check_output, check_resumed,
                                              load_model, output_paths, recorder, resumed_config, scratch_paths)
from ghostnet_tf.training.config import TrainConfig, check_config
from ghostnet_tf.training.data import load_data, make_dataset
from ghostnet_tf.training.devices import configure_devices, fitting, read_cluster
from ghostnet_tf.training.models import compile_model, resolve_builder


def train(data, output, config=None, resume=False, show_progress=True, show=print, builder=None, **options):
    """Train a model on ``data`` (class folders or .npz) and write ``output`` (.keras) and its companions
    (``output_paths``). Returns the report (dict). ``options`` set fields of ``TrainConfig``;
    ``builder``: a callable ``(config) -> uncompiled Keras model``, a registered name ("ghostnetv2_100"), or
    None for ``config.model`` or the GhostNet of ``config.family`` and ``config.width`` (a resumed run reloads
    its own model). With ``strategy="multi-worker"`` every worker of TF_CONFIG runs this with the same
    arguments; only the chief keeps the files."""
    output = os.fspath(output)
    paths = output_paths(output)
    resumed = resumed_config(output, paths, options) if resume else None
    if resumed:
        config, history = resumed.config, resumed.history
    else:
        config, history = config or TrainConfig(), []
        for key, value in options.items():
            if value is not None:
                setattr(config, key, value)
        config.input_size = tuple(config.input_size)
        config.data = os.fspath(data)
        builder = resolve_builder(builder, config, options.get("width") is not None
                                  or options.get("family") is not None)
    check_config(config)
    check_inputs(config, paths, resume)
    cluster = read_cluster() if config.strategy == "multi-worker" else None
    check_output(output, paths, writes=cluster is None or cluster.chief)
    samples, train_set, val_set = load_data(config)
    if config.crop_pct is None:
        config.crop_pct = default_crop_pct(config.input_size)
    transform = Transform(config.input_size, config.crop_pct, config.interpolation)

    strategy = configure_devices(config.devices, config.strategy)
    import keras

    keras.utils.set_random_seed(config.seed)  # initial weights and dropout: the same run every time
    steps = len(train_set) // config.batch_size
    first_epoch = len(history)
    with strategy.scope():
        model = load_model(paths["last"], "--resume") if resume else compile_model(config, steps, builder)
    if resumed and not resumed.recorded:
        check_model(model, paths["last"], config)
    if resumed:
        check_resumed(model, paths["last"], first_epoch, steps)
    train_ds = make_dataset(train_set, transform, config.batch_size, config.classes, True, config.seed,
                            first_epoch, config.epochs)
    val_ds = None if val_set is None else make_dataset(val_set, transform, config.batch_size, config.classes, False)
    skipped = samples.skipped + (val_set.skipped if config.val else 0)
    show(f"training {model.name} ({transform.size[0]}x{transform.size[1]}, crop {transform.crop_pct:g}, "
         f"{transform.interpolation}) on {len(train_set)} images of {config.classes} classes"
         + (f", validating on {len(val_set)}" if val_set is not None else "")
         + (f", {skipped} unreadable files skipped" if skipped else "")
         + f"; {strategy.num_replicas_in_sync} device(s)"
         + (f" on {cluster.workers} workers (this: {cluster.task_type} {cluster.index})" if cluster else "")
         + f"; epochs {first_epoch + 1}..{config.epochs}")
    warnings.filterwarnings("ignore", message=".*(shuffle=True|ran out of data).*")  # the stream is shuffled/finite by design
    with contextlib.ExitStack() as stack:
        write_to = paths if cluster is None or cluster.chief else stack.enter_context(scratch_paths(paths))
        run = Run(config, paths, transform, len(train_set), steps, history, show, write_to)
        run.skipped = skipped
        if resumed and resumed.behind:  # stopped after the checkpoint of an epoch end, before its other files
            run.publish(model)
        if first_epoch < config.epochs:  # else the run had ended but for those files
            stack.enter_context(fitting(model, strategy))
            model.fit(train_ds, epochs=config.epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                      validation_data=val_ds, callbacks=[recorder(run)],
                      verbose=(1 if sys.stdout.isatty() else 2) if show_progress else 0)
    return run.report()
