"""The files of a run, each written atomically after every epoch: ``OUT.last.keras`` (with the optimizer
state, for ``--resume``), ``OUT.keras`` (the best epoch by validation top-1, the last one without validation),
``OUT.log.csv`` and ``OUT.report.json``; starting from a checkpoint (--weights) and resuming a run.

An epoch end is one commit: ``OUT.last.keras`` carries the run's record (the report) inside, so renaming it
into place records the epoch; the other three files are derived from it and written next, the report last. A
run stopped between the two (Ctrl-C, ``kill -9``, a full disk) is whole in ``OUT.last.keras``, and ``--resume``
writes the derived files again before it goes on."""
import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import asdict, fields
from typing import NamedTuple

import numpy as np

from ghostnet_tf.cliutil import (MissingDependency, UsageError, check_distinct_paths, check_input_file,
                                first_line)
from ghostnet_tf.files import atomic_path, check_writable, remove_stale_temps, write_atomic
from ghostnet_tf.preprocessing import write_labels, write_transform
from ghostnet_tf.training.config import RESUME_OPTIONS, TrainConfig
from ghostnet_tf.training.data import SHUFFLE_SEED_STRIDE

RECORD_MEMBER = "ghostnet_run.json"  # the run's record (its report) inside OUT.last.keras
COMPANIONS = {"last": "OUT.last.keras", "log": "OUT.log.csv", "report": "OUT.report.json"}


def output_paths(output):
    """OUT.keras -> the files of a run: best/final model, last checkpoint, CSV log, JSON report."""
    stem = output[:-len(".keras")] if output.endswith(".keras") else output
    return {"best": output, "last": f"{stem}.last.keras", "log": f"{stem}.log.csv", "report": f"{stem}.report.json"}


def check_output(output, paths, writes=True):
    """A .keras output; with ``writes`` (the process keeps the files), every file of the run writable and the
    temporary files a killed run left beside them removed."""
    if not output.endswith(".keras"):
        raise ValueError(f"-o/--output: the model is saved as a .keras file, got {output!r}")
    for name in ("best", "last", "log", "report") if writes else ():
        check_writable(paths[name], "-o/--output")
        remove_stale_temps(paths[name])


def check_inputs(config, paths, resume):
    """No input is a file of the run (it would be overwritten after the first epoch), and --weights, read only
    when a run starts, is a file this process can read, checked before any work."""
    outputs = {"-o/--output": paths["best"]}
    outputs.update({f"{label} (beside -o/--output)": paths[name] for name, label in COMPANIONS.items()})
    weights = None if resume else config.weights
    check_distinct_paths(**outputs, DATA=config.data, **{"--val": config.val, "--weights": weights})
    if weights:
        check_weights(weights)


def check_weights(path):
    """--weights: an existing regular file, a zip archive if it is a .keras model, readable with the packages
    installed."""
    from ghostnet_tf.weights import require_reader

    if not os.path.lexists(path):
        raise ValueError(f"--weights: no such file: {path!r}")
    if path.endswith(".keras"):
        check_keras_file(path, "--weights")
    else:
        check_input_file(path, "--weights")
        try:
            require_reader(path)
        except MissingDependency as exc:
            raise MissingDependency(_as_option(str(exc))) from None


def check_keras_file(path, option):
    """A regular file holding a zip archive, as every .keras file is (Keras says "File not found" otherwise)."""
    check_input_file(path, option)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{option}: cannot read {path!r}: it is not a .keras file (not a zip archive: damaged "
                         "or truncated?)")


@contextlib.contextmanager
def scratch_paths(paths):
    """The run's file names in a temporary folder, deleted afterwards: where a worker other than the chief
    writes. Every worker of a multi-worker run saves (saving reads the distributed variables together), and
    only the chief's files are kept."""
    scratch = tempfile.mkdtemp(prefix="ghostnet-worker-")
    try:
        yield {name: os.path.join(scratch, os.path.basename(path)) for name, path in paths.items()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def save_model(model, path, transform, optimizer=True, labels=(), record=None):
    """``model.save`` through a temporary file, with the evaluation transform and class names recorded inside
    (and ``record``, the run's report, in OUT.last.keras). ``optimizer=False`` leaves the optimizer state out
    (the best model is for deployment: no AdamW moments)."""
    import keras

    if not optimizer:  # the same layers in an uncompiled model: no optimizer variables to save
        model = keras.Model(model.inputs, model.outputs, name=model.name)
    with atomic_path(path) as tmp:
        model.save(tmp)
        write_transform(tmp, transform)
        if labels:
            write_labels(tmp, labels)
        if record is not None:
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(RECORD_MEMBER, json.dumps(record))


def load_model(path, option="the model", compile=True):
    """A .keras model saved by the run (with the optimizer, for ``last``); ``convert.source.ModelSource.from_file``
    also reads the transform and class names recorded inside. ``option`` names the file in errors."""
    import keras

    check_keras_file(path, option)
    try:
        return keras.models.load_model(path, compile=compile)  # the package's classes are registered on import
    except Exception as exc:  # Keras raises ValueError, KeyError, OSError, ... for a damaged archive
        raise ValueError(f"{option}: cannot read {path!r} as a Keras model: {first_line(exc)}") from None


def _as_option(message):
    """A checkpoint reader's message, for ``--weights`` (its Python name is `weights`)."""
    if message.startswith("--weights"):
        return message
    return "--weights" + message[len("`weights`"):] if message.startswith("`weights`") else f"--weights: {message}"


def load_checkpoint(model, path):
    """Start from a checkpoint: a GhostNet .keras file (weights by layer, the classifier only if it fits) or
    any file ``load_weights`` reads (ImageNet weights get a fresh classifier for other ``classes``)."""
    from ghostnet_tf.weights import assign_state_dict, load_weights, state_dict_from_model

    check_weights(path)
    try:
        if path.endswith(".keras"):
            source = load_model(path, "--weights", compile=False)
            state = state_dict_from_model(source)
            if source.output_shape[-1] != model.output_shape[-1]:  # a new head: keep the fresh classifier
                own = state_dict_from_model(model)
                state.update({k: v for k, v in own.items() if k.startswith("classifier.")})
            assign_state_dict(model, state, source=path)
        else:
            load_weights(model, path)
    except ValueError as exc:
        raise ValueError(_as_option(str(exc))) from None


def parse_record(data, source):
    """(TrainConfig, history) of a run's record (the JSON of its report) read from ``source``; one line naming
    ``source`` and what is wrong when it is not one this version can continue."""
    def bad(problem):
        return ValueError(f"--resume: {source!r} {problem}; restore the run's own file, or start the run again "
                          "without --resume")

    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"is not valid JSON ({first_line(exc)}): damaged or truncated") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise bad("has no 'config' object: it is not the report of a `ghostnet train` run")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(record["config"]) - known)
    if unknown:
        raise bad(f"has an unknown config key {unknown[0]!r} (written by another version of ghostnet-tf?)")
    if "history" not in record:
        raise bad("has no 'history' (the epochs done)")
    history = record["history"]
    if not isinstance(history, list) or any(
            not isinstance(row, dict) or row.get("epoch") != i + 1 or not isinstance(row.get("seconds"), (int, float))
            for i, row in enumerate(history)):
        raise bad("has a 'history' that is not the rows of epochs 1, 2, ... (with their seconds)")
    try:
        config = TrainConfig(**{**record["config"], "input_size": tuple(record["config"].get("input_size", ()))})
    except TypeError as exc:
        raise bad(f"has a config this version cannot take ({first_line(exc)})") from None
    return config, history


def read_record(path):
    """The run's record inside OUT.last.keras as (config, history), or None in a checkpoint written without
    one (by an older ghostnet-tf)."""
    with zipfile.ZipFile(path) as archive:
        if RECORD_MEMBER not in archive.namelist():
            return None
        data = archive.read(RECORD_MEMBER)
    return parse_record(data, path)


def read_report(path):
    check_input_file(path, "--resume")  # not /dev/zero or a FIFO: json.load would never end
    with open(path, "rb") as f:
        return parse_record(f.read(), path)


def check_same_run(record, report, paths):
    """OUT.last.keras belongs to the run of OUT.report.json: the same options (those --resume takes anew
    aside), and not older than the report."""
    (config, history), (theirs, their_history) = record, report
    ours, recorded = asdict(config), asdict(theirs)
    for key in ours:
        if key not in RESUME_OPTIONS and ours[key] != recorded[key]:
            raise ValueError(f"--resume: {paths['last']!r} is not the checkpoint of the run in {paths['report']!r}: "
                             f"it has {key} {ours[key]!r}, the report {key} {recorded[key]!r}; put back the run's "
                             "own OUT.last.keras, or start again without --resume")
    if len(their_history) > len(history):
        raise ValueError(f"--resume: {paths['last']!r} is at epoch {len(history)}, {paths['report']!r} at epoch "
                         f"{len(their_history)}: it is not the run's last checkpoint; put back the run's own "
                         "OUT.last.keras, or start again without --resume")


class Resumed(NamedTuple):
    config: TrainConfig  # with the options --resume takes anew applied
    history: list
    behind: bool  # the derived files (best model, log, report) are behind the checkpoint: write them again
    recorded: bool  # OUT.last.keras holds its record; else (an older checkpoint) OUT.report.json's was taken


def resumed_config(output, paths, options):
    """The interrupted run at ``output`` (``Resumed``), with ``options``' RESUME_OPTIONS applied. The record
    inside OUT.last.keras is the run's own; without one (an older checkpoint), OUT.report.json's."""
    last, report_path = paths["last"], paths["report"]
    if not os.path.lexists(last):
        raise ValueError(f"--resume: no interrupted run at {output!r} (no {last!r}); start it without --resume")
    check_keras_file(last, "--resume")
    record = read_record(last)
    report = None
    if os.path.lexists(report_path):
        try:
            report = read_report(report_path)
        except (UsageError, ValueError):  # a derived file: written again from the record
            if record is None:
                raise
    elif record is None:
        raise ValueError(f"--resume: no record of the run at {output!r}: {last!r} holds none and {report_path!r} "
                         "is missing; start the run again without --resume")
    if record is not None and report is not None:
        check_same_run(record, report, paths)
    config, history = record or report
    recorded_epochs = config.epochs
    for key in RESUME_OPTIONS:
        if options.get(key) is not None:
            setattr(config, key, options[key])
    done = len(history)
    behind = record is not None and (report is None or len(report[1]) < done)
    if done >= config.epochs and not behind:  # behind: stopped while writing its last files, which --resume ends
        state = "finished" if done >= recorded_epochs else "stopped after"
        raise ValueError(f"--resume: the run at {output!r} {state} {done} epochs; --epochs must be more than {done} "
                         "to extend it")
    return Resumed(config, history, behind, record is not None)


def _describe_ghostnet(model):
    """(family, width) of a GhostNet model, or None for any other model."""
    from ghostnet_tf.weights import infer_family, infer_width, state_dict_from_model

    try:
        shapes = {k: v.shape for k, v in state_dict_from_model(model).items()}
    except ValueError:  # layers that are not a GhostNet's
        return None
    width = infer_width(shapes)
    return None if width is None else (infer_family(shapes)[0], width)


def check_model(model, path, config):
    """A checkpoint without a record of its own is the model of ``config``: its classes, input size and, for a
    GhostNet, family and width."""
    def differs(what, theirs):
        return ValueError(f"--resume: {path!r} is not this run's checkpoint: it {what}, the run {theirs}; put "
                          "back the run's own OUT.last.keras, or start again without --resume")

    size = tuple(model.input_shape[1:3])
    if model.output_shape[-1] != config.classes:
        raise differs(f"has {model.output_shape[-1]} classes", f"{config.classes} classes")
    if size != tuple(config.input_size):
        raise differs(f"takes {size[0]}x{size[1]} images", "{}x{}".format(*config.input_size))
    ghostnet = _describe_ghostnet(model)
    if ghostnet is not None and ghostnet != (config.family, config.width):
        raise differs(f"is family {ghostnet[0]} width {ghostnet[1]:g}",
                      f"family {config.family} width {config.width:g}")


def check_resumed(model, path, epochs_done, steps):
    """The optimizer state (step count, moments) comes back with the model; check it is where the log ends."""
    if getattr(model, "optimizer", None) is None:
        raise ValueError(f"--resume: {path!r} has no optimizer state: it is not a run's last checkpoint (OUT.keras "
                         "is saved without it); put back the run's own OUT.last.keras, or start again without "
                         "--resume")
    done = int(np.asarray(model.optimizer.iterations))
    if done != epochs_done * steps:
        raise ValueError(f"--resume: {path!r} stopped after {done} steps, its record after {epochs_done} epochs of "
                         f"{steps} steps: DATA is not what the run trained on, or the checkpoint is not the run's")


def recorder(run):
    """The Keras callback of ``run``: per epoch, re-seeds dropout and records the epoch (``Run.end_epoch``)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            # Dropout draws from seed-generator variables whose saved state does not bring back the stream;
            # re-seed them from (seed, epoch) so a resumed epoch drops exactly the units it would have.
            for variable in self.model.variables:
                if "seed_generator_state" in variable.path:
                    value = np.asarray(variable)
                    value[...] = 0
                    value.flat[0] = (run.config.seed * SHUFFLE_SEED_STRIDE + epoch) % (2 ** 31 - 1)
                    variable.assign(value)
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            run.end_epoch(self.model, epoch, dict(logs or {}), time.perf_counter() - self.start)

    return Recorder()


class Run:
    """The record of a run: its history, per epoch the checkpoints, the CSV log and the JSON report. ``paths``
    are the run's files (as reported); ``write_to`` where this process writes them (``paths`` by default;
    ``scratch_paths`` on a worker other than the chief)."""

    def __init__(self, config, paths, transform, train_count, steps_per_epoch, history=None, show=print,
                 write_to=None):
        self.config, self.paths, self.transform = config, paths, transform
        self.write_to = write_to or paths
        self.train_count, self.steps_per_epoch = train_count, steps_per_epoch
        self.history = list(history or [])
        self.show = show
        self.skipped = 0

    @property
    def best(self):
        key = "val_accuracy" if self.history and "val_accuracy" in self.history[0] else None
        if not self.history:
            return None
        if key is None:
            return self.history[-1]
        return max(self.history, key=lambda row: (row[key], -row["epoch"]))

    def end_epoch(self, model, epoch, logs, seconds):
        lr = model.optimizer.learning_rate
        row = {"epoch": epoch + 1, "loss": float(logs.get("loss", math.nan)),
               "accuracy": float(logs.get("accuracy", math.nan)), "lr": float(np.asarray(lr))}
        if "val_loss" in logs:
            row["val_loss"] = float(logs["val_loss"])
            row["val_accuracy"] = float(logs["val_accuracy"])
        row["seconds"] = round(seconds, 2)
        row["images_per_s"] = round(self.steps_per_epoch * self.config.batch_size / max(seconds, 1e-9), 1)
        if not all(math.isfinite(row[k]) for k in ("loss",)):
            raise ValueError(f"training diverged at epoch {epoch + 1} (loss {row['loss']}); "
                             f"try a smaller --lr than {self.config.lr}")
        self.history.append(row)
        committed = False
        try:
            save_model(model, self.write_to["last"], self.transform, labels=self.config.class_names,
                       record=self.report())
            committed = True
            self.publish(model)
        except OSError as exc:  # a full disk, a removed folder: say what is saved and how to go on
            saved = len(self.history) - (not committed)
            raise OSError(f"{first_line(exc)}; the run is saved up to epoch {saved}: make room, then `ghostnet "
                          f"train -o {self.paths['best']} --resume`" if saved else
                          f"{first_line(exc)}; nothing of the run is saved yet: make room and start again") from None

    def publish(self, model):
        """The files derived from the committed OUT.last.keras: the best model if it is the last epoch, the log,
        and the report last (it tells that the epoch end is complete)."""
        if self.best is self.history[-1]:
            save_model(model, self.write_to["best"], self.transform, optimizer=False,
                       labels=self.config.class_names)
        self.write_log()
        self.write_report()

    def write_log(self):
        buffer = io.StringIO()
        columns = list(self.history[0])
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        writer.writerows(self.history)
        write_atomic(self.write_to["log"], buffer.getvalue().encode())

    def report(self):
        best = self.best
        return {"config": {**asdict(self.config), "input_size": list(self.config.input_size)},
                "transform": self.transform.to_json(), "train_images": self.train_count,
                "steps_per_epoch": self.steps_per_epoch, "skipped": self.skipped, "epochs_done": len(self.history),
                "complete": len(self.history) >= self.config.epochs,
                "best_epoch": best["epoch"] if best else None,
                "wall_seconds": round(sum(r["seconds"] for r in self.history), 1),
                "files": self.paths, "history": self.history}

    def write_report(self):
        write_atomic(self.write_to["report"], (json.dumps(self.report(), indent=2) + "\n").encode())
