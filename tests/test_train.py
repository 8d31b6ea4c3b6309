"""``ghostnet train`` on a tiny generated folder: a run, an interrupted run resumed, two logical CPU devices
under MirroredStrategy, two worker processes under MultiWorkerMirroredStrategy, GhostNetV2/V3 pieces through
the injected builder, the evaluation transform carried by the model, and bad inputs.

The runs train tiny models given as the ``builder`` (``tiny.tiny_classifier``, a GhostModule classifier): the
tests exercise the loop, the files and resume, not GhostNet's accuracy (tracing a whole GhostNet's training
step takes minutes on 2 cores); the registered models are built, and the command line's own builder is covered
by the bad-input tests and the wrong-width checkpoint."""
import csv
import functools
import json
import os
import socket
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from ghostnet_tf.cli import main
from ghostnet_tf.preprocessing import TRANSFORM_MEMBER, Transform, read_transform, resize_and_crop
from tiny import tiny_classifier

WIDTH = "0.25"  # the smallest useful GhostNet, for the command-line tests
CLASSES = ("red", "green", "blue")
COMMON = ["--width", WIDTH, "--input-size", "32", "--batch-size", "8", "--no-progress", "--seed", "3"]
OPTIONS = {"input_size": (32, 32), "batch_size": 8, "seed": 3}  # COMMON, for the Python API


@pytest.fixture(scope="module")
def folder(tmp_path_factory, write_image):
    """3 class folders x 8 images of 36x40 pixels, each class tinted by its colour; one corrupt file."""
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir()
        for i in range(8):
            image = rng.integers(0, 120, (36, 40, 3))
            image[..., label] += 120
            write_image(root / name / f"{i}.{'png' if i % 2 else 'jpg'}", image)
    (root / "green" / "broken.jpg").write_bytes(b"not an image")
    return root


def run(*argv):
    return main([str(a) for a in argv])


def train_tiny(data, out, builder=tiny_classifier, **options):
    """``ghostnet train DATA -o OUT`` through the Python API, with the tiny classifier as the model by default."""
    from ghostnet_tf.training import train

    return train(str(data), str(out), show_progress=False, show=lambda message: None, builder=builder,
                 **OPTIONS, **options)


def weights_of(path):
    import keras

    from ghostnet_tf.training import load_model

    return [np.asarray(w) for w in load_model(str(path)).weights], keras


@pytest.fixture(scope="module")
def full_run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "m.keras"
    train_tiny(folder, out, epochs=2, val_split=0.25)
    return out


def test_train_writes_model_checkpoints_log_and_report(full_run, capsys):
    out = full_run
    stem = str(out)[:-len(".keras")]
    for path in (out, f"{stem}.last.keras", f"{stem}.log.csv", f"{stem}.report.json"):
        assert os.path.isfile(path), path
    report = json.loads(open(f"{stem}.report.json").read())
    # 24 readable images, 25 % of each class held out: 18 train, 6 val; batch 8 -> 2 steps per epoch.
    assert report["train_images"] == 18 and report["steps_per_epoch"] == 2
    assert report["epochs_done"] == 2 and report["complete"] and report["skipped"] == 1  # broken.jpg
    assert [row["epoch"] for row in report["history"]] == [1, 2]
    for row in report["history"]:
        assert np.isfinite(row["loss"]) and 0 <= row["val_accuracy"] <= 1
        # seconds are rounded to 0.01 and images/s to 0.1 in the report: allow exactly that rounding
        seconds = row["seconds"]
        assert seconds > 0
        assert 16 / (seconds + 0.005) - 0.05 <= row["images_per_s"] <= 16 / max(seconds - 0.005, 1e-9) + 0.05
    # Warm-up over epoch 1 (2 steps) to the peak 2e-3, then cosine down to 1 % of it at the last step.
    assert report["history"][0]["lr"] == pytest.approx(2e-3, rel=1e-5)
    assert report["history"][1]["lr"] == pytest.approx(2e-5, rel=1e-3)
    with open(f"{stem}.log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["loss"]) for r in rows] == pytest.approx([r["loss"] for r in report["history"]])
    best = max(report["history"], key=lambda r: (r["val_accuracy"], -r["epoch"]))
    assert report["best_epoch"] == best["epoch"]
    assert read_transform(out) == Transform((32, 32), 1.0, "bicubic")
    # The best model is for deployment: no optimizer state; the last checkpoint keeps it for --resume.
    from ghostnet_tf.training import load_model

    assert getattr(load_model(str(out)), "optimizer", None) is None
    assert int(np.asarray(load_model(f"{stem}.last.keras").optimizer.iterations)) == 4


def test_model_carries_its_transform_into_eval(full_run, folder):
    """`ghostnet eval --keras-model` of a trained 32x32 model sees the whole 36x40 image (crop 1), not
    ImageNet's 87.5 % centre crop."""
    from convert.evaluation import evaluate
    from convert.source import load_keras_model

    report = evaluate(str(folder), model=load_keras_model(keras_model=str(full_run)), show_progress=False)
    assert report["transform"] == {"size": [32, 32], "crop_pct": 1.0, "interpolation": "bicubic"}
    assert report["images"] == 24 and report["skipped"] == 1
    imagenet = resize_and_crop(np.full((36, 40, 3), 7, np.uint8), (32, 32))
    assert imagenet.shape == (32, 32, 3)


def test_whole_image_transform_keeps_a_native_size_image():
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    np.testing.assert_array_equal(resize_and_crop(image, (32, 32), Transform((32, 32), 1.0)), image)
    # ImageNet's transform zooms: the 32x32 crop of a 36x36 resize is not the image.
    assert not np.array_equal(resize_and_crop(image, (32, 32)), image)


def test_resume_continues_exactly_where_it_stopped(full_run, folder, tmp_path, monkeypatch):
    from ghostnet_tf import training

    out = tmp_path / "m.keras"
    original = training.Run.end_epoch

    def end_then_stop(self, model, epoch, logs, seconds):
        original(self, model, epoch, logs, seconds)
        raise KeyboardInterrupt  # the run is killed right after epoch 1 was recorded

    monkeypatch.setattr(training.Run, "end_epoch", end_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_tiny(folder, out, epochs=2, val_split=0.25)
    monkeypatch.setattr(training.Run, "end_epoch", original)
    assert json.loads((tmp_path / "m.report.json").read_text())["epochs_done"] == 1
    assert run("train", "-o", out, "--resume", "--no-progress") == 0

    resumed = json.loads((tmp_path / "m.report.json").read_text())
    uninterrupted = json.loads(open(str(full_run)[:-len(".keras")] + ".report.json").read())
    assert resumed["epochs_done"] == 2
    for a, b in zip(resumed["history"], uninterrupted["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-6)
    ours, _ = weights_of(tmp_path / "m.last.keras")
    theirs, _ = weights_of(str(full_run)[:-len(".keras")] + ".last.keras")
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert run("train", "-o", out, "--resume", "--no-progress") == 2  # finished: nothing left to resume


def test_two_logical_cpu_devices(folder, tmp_path):
    """The MirroredStrategy path (a new process: logical devices must be set before TensorFlow starts)."""
    out = tmp_path / "m.keras"
    script = ("import sys; from ghostnet_tf.training import train; from tiny import tiny_classifier; "
              "train(sys.argv[1], sys.argv[2], show_progress=False, builder=tiny_classifier, epochs=1, devices=2, "
              f"**{OPTIONS!r})")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script, str(folder), str(out)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    assert "2 device(s)" in result.stdout
    report = json.loads((tmp_path / "m.report.json").read_text())
    assert report["config"]["devices"] == 2 and report["epochs_done"] == 1
    assert np.isfinite(report["history"][0]["loss"])


@pytest.mark.parametrize("setup, argv, message", [
    ("empty", [], "no readable JPEG/PNG images"),
    ("one_class", [], "needs at least 2"),
    ("data", ["--val-split", "0.5", "--val", "{data}"], "not allowed with argument"),
    ("data", ["--batch-size", "500"], "larger than the"),
    ("data", ["-o", "{tmp}/missing/m.keras"], "does not exist"),
    ("data", ["-o", "{tmp}/m.h5"], "saved as a .keras file"),
    ("data", ["--lr", "0"], "expected a number > 0"),
    ("data", ["--weights", "{tmp}/nothing.weights.h5"], "no such file"),
])
def test_bad_input_one_line_exit_2(setup, argv, message, folder, tmp_path, capsys, write_image):
    data = folder
    if setup == "empty":
        data = tmp_path / "empty"
        (data / "a").mkdir(parents=True)
    elif setup == "one_class":
        data = tmp_path / "one"
        (data / "a").mkdir(parents=True)
        for i in range(10):
            write_image(data / "a" / f"{i}.png", np.zeros((32, 32, 3)))
    argv = [a.format(tmp=tmp_path, data=folder) for a in argv]
    out = [] if "-o" in argv else ["-o", str(tmp_path / "m.keras")]
    with pytest.raises(SystemExit) if "not allowed" in message or "expected a number" in message else _nothing():
        assert run("train", data, *out, "--epochs", "1", *COMMON, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 or "usage:" in err
    assert not [p for p in os.listdir(tmp_path) if p.startswith("m.")]


@pytest.mark.slow
def test_checkpoint_of_the_wrong_width(folder, tmp_path, capsys):
    from ghostnet_tf.model import GhostNet

    checkpoint = tmp_path / "wide.keras"
    GhostNet(width=0.5, input_shape=(32, 32, 3), classes=3).save(checkpoint)
    assert run("train", folder, "-o", tmp_path / "m.keras", "--epochs", "1", "--weights", checkpoint, *COMMON) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "width 0.5" in err
    assert not [p for p in os.listdir(tmp_path) if p.startswith("m.")]


def test_transform_member_is_ignored_by_keras(full_run):
    import keras

    with zipfile.ZipFile(full_run) as archive:
        assert TRANSFORM_MEMBER in archive.namelist()
    keras.models.load_model(str(full_run), compile=False)


def test_checkpoints_reload_in_a_fresh_process(full_run):
    """``import ghostnet_tf`` registers the learning-rate schedule too: the resumable checkpoint reloads."""
    code = ("import sys, ghostnet_tf, keras; m = keras.models.load_model(sys.argv[1]); "
            "print(type(m.optimizer._learning_rate).__name__ if len(sys.argv) > 2 else m.name)")
    last = str(full_run).replace(".keras", ".last.keras")
    for argv in ([str(full_run)], [last, "optimizer"]):
        result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "WarmupCosine"


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_predict_names_the_classes_of_a_trained_model(full_run, folder, tmp_path, capsys):
    """The class folders' names travel: in the .keras, through `ghostnet convert` into the .tflite's metadata,
    and out of `ghostnet predict` for either file."""
    image = str(folder / "red" / "0.jpg")
    tflite = tmp_path / "m.tflite"
    assert run("convert", "--keras-model", full_run, "-o", tflite, "--calibration", folder,
               "--calibration-steps", "8", "--eval-count", "4", "--no-progress") == 0
    for model in (["--keras-model", full_run], ["--tflite", tflite]):
        capsys.readouterr()
        assert run("predict", image, *model, "--top", "3", "--json") == 0
        top = json.loads(capsys.readouterr().out)["predictions"][0]["top"]
        assert sorted(p["label"] for p in top) == sorted(CLASSES)
        assert [p["label"] for p in top] == [sorted(CLASSES)[p["index"]] for p in top]  # label = sorted folder index


@pytest.mark.parametrize("argv, message", [
    (["predict", "nope.jpg", "--tflite", "m.tflite"], "no such file: 'nope.jpg'"),
    (["predict", "IMAGE", "--tflite", "IMAGE"], "not a TFLite model"),
])
def test_predict_bad_input_one_line_exit_2(argv, message, folder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.tflite").write_bytes(b"")
    image = str(folder / "red" / "0.jpg")
    assert run(*[image if a == "IMAGE" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


def plain_classifier(config):
    """A builder without BatchNorm or dropout, whose training step depends only on the global batch (not on how
    it is split over replicas): for comparing a multi-worker run with one process."""
    import keras

    from ghostnet_tf.preprocessing import normalization_layer

    inputs = keras.Input((*config.input_size, 3), name="image")
    x = normalization_layer()(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(config.classes, activation="softmax", name="classifier")(x))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


WORKER = ("import sys; from ghostnet_tf.training import train; from test_train import plain_classifier; "
          "train(sys.argv[1], sys.argv[2], show_progress=False, builder=plain_classifier, strategy='multi-worker', "
          "epochs=2, dropout=0.0, **{options!r})")
# Measured on a 2-core x86 VM: after 6 AdamW steps the chief's weights differ from one process's by at most
# 1.5e-8 (the all-reduce sums the two halves of each batch in another order); 1e-6 leaves room for other CPUs.
MULTI_WORKER_ATOL = 1e-6


@pytest.mark.slow
def test_two_workers_reach_the_weights_of_one_process(folder, tmp_path):
    """Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy from TF_CONFIG, global batch 8 = 4 per
    worker) against one process with batch 8: the same weights and losses; only the chief (worker 0) keeps
    files, worker 1 writes into a temporary folder it deletes."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs = []
    for index in range(2):
        (tmp_path / f"w{index}").mkdir()
        (tmp_path / f"tmp{index}").mkdir()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(tmp_path / f"tmp{index}"),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER.format(options=OPTIONS), str(folder),
                                       str(tmp_path / f"w{index}" / "m.keras")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    one = train_tiny(folder, tmp_path / "one.keras", builder=plain_classifier, epochs=2, dropout=0.0)
    deadline = time.monotonic() + 240
    try:
        outputs = [proc.communicate(timeout=max(1, deadline - time.monotonic())) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    assert "on 2 workers (this: worker 0)" in outputs[0][0]
    chief = json.loads((tmp_path / "w0" / "m.report.json").read_text())
    assert chief["config"]["strategy"] == "multi-worker" and chief["epochs_done"] == 2
    assert os.listdir(tmp_path / "w1") == [] and os.listdir(tmp_path / "tmp1") == []
    for a, b in zip(chief["history"], one["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    ours, _ = weights_of(tmp_path / "w0" / "m.last.keras")
    theirs, _ = weights_of(tmp_path / "one.last.keras")
    assert len(ours) == len(theirs)
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs))
    assert difference <= MULTI_WORKER_ATOL, difference


@pytest.mark.parametrize("tf_config, message", [
    (None, "TF_CONFIG is not set"),
    ("{not json", "TF_CONFIG is not JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "task index must be 0..0"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "\"host:port\" addresses"),
    ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', "has a 'ps' job"),
])
def test_multi_worker_needs_a_valid_tf_config(tf_config, message, folder, tmp_path, capsys, monkeypatch):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    assert run("train", folder, "-o", tmp_path / "m.keras", "--strategy", "multi-worker", *COMMON) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert os.listdir(tmp_path) == []


def test_chief_is_the_chief_task_or_worker_0():
    from ghostnet_tf.training import read_cluster

    def chief(cluster, task_type, index):
        return read_cluster({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type,
                                                                                    "index": index}})}).chief

    workers = {"worker": ["a:1", "b:1"]}
    assert chief(workers, "worker", 0) and not chief(workers, "worker", 1)
    with_chief = {"chief": ["c:1"], **workers}
    assert chief(with_chief, "chief", 0) and not chief(with_chief, "worker", 0)
    assert read_cluster({"TF_CONFIG": json.dumps({"cluster": with_chief, "task": {"type": "worker",
                                                                                  "index": 1}})}).workers == 3


def family_classifier(config, family):
    """A builder of one GhostNetV2 (DFC attention) or GhostNetV3 (re-parameterisable branches, training form)
    bottleneck on a stem: the family's own layers, trained in seconds."""
    import keras

    from ghostnet_tf.blocks import conv_bn, ghost_bottleneck
    from ghostnet_tf.model_v2 import ghost_module_v2, ghost_module_v3, rep_depthwise
    from ghostnet_tf.preprocessing import normalization_layer

    if family == "v2":
        parts = {"ghost1": ghost_module_v2}
    else:
        ghost = functools.partial(ghost_module_v3, folded=False)
        parts = {"ghost1": functools.partial(ghost, attention=True), "ghost2": functools.partial(ghost, attention=False),
                 "depthwise": functools.partial(rep_depthwise, folded=False)}
    inputs = keras.Input((*config.input_size, 3), name="image")
    x = conv_bn(normalization_layer()(inputs), 16, 3, 2, "conv_stem", "bn1", "act1")
    x = ghost_bottleneck(x, 32, 16, 3, 2, 0, name="blocks.0.0", **parts)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(config.classes, activation="softmax", name="classifier")(x),
                       name=f"tiny_{family}")


@pytest.mark.parametrize("family", ["v2", pytest.param("v3", marks=pytest.mark.slow)])  # v3: 33 s on 2 cores
def test_v2_and_v3_train_through_the_injected_builder(family, folder, tmp_path):
    report = train_tiny(folder, tmp_path / "m.keras", builder=functools.partial(family_classifier, family=family),
                        epochs=1, val_split=0.25)
    assert report["epochs_done"] == 1 and np.isfinite(report["history"][0]["loss"])
    from ghostnet_tf.training import load_model

    names = [layer.name for layer in load_model(str(tmp_path / "m.last.keras")).layers]
    marker = "blocks.0.0.ghost1.attention" if family == "v2" else "blocks.0.0.ghost1.primary_rpr"
    assert marker in names


@pytest.mark.parametrize("name, family, width", [("ghostnetv2_100", "v2", 1.0), ("ghostnetv3_050", "v3", 0.5)])
def test_a_registered_name_is_the_builder(name, family, width):
    """``builder="ghostnetv2_100"`` (``ghostnet train --model NAME``) builds the registered model for the run's
    input and classes; GhostNetV3 in its multi-branch training form."""
    from ghostnet_tf.reparam import has_branches
    from ghostnet_tf.training import TrainConfig, resolve_builder
    from ghostnet_tf.weights import state_dict_from_model

    config = TrainConfig(input_size=(40, 40), classes=3, dropout=0.0)
    model = resolve_builder(name, config)(config)
    assert (config.model, config.family, config.width) == (name, family, width)
    assert model.name == name and model.input_shape == (None, 40, 40, 3) and model.output_shape == (None, 3)
    assert has_branches(state_dict_from_model(model)) == (family == "v3")


@pytest.mark.parametrize("argv, message", [
    (["--model", "ghostnetv2_100", "--family", "v2"], "names the family and width"),
    (["--model", "ghostnetv9_100"], "unknown model 'ghostnetv9_100'"),
    (["--strategy", "multi-worker", "--devices", "2"], "--devices goes with --strategy mirrored"),
])
def test_model_and_strategy_bad_input_exit_2(argv, message, folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}')
    common = [a for a in COMMON if a not in ("--width", WIDTH)]
    with pytest.raises(SystemExit) if "unknown" in message else _nothing():
        assert run("train", folder, "-o", tmp_path / "m.keras", *common, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err.splitlines()[-1]
    assert os.listdir(tmp_path) == []


def test_info_takes_a_registered_name(capsys):
    assert run("info", "--model", "ghostnetv3_050", "--input-size", "64", "--json") == 0
    by_name = json.loads(capsys.readouterr().out)
    assert run("info", "--family", "v3", "--width", "0.5", "--input-size", "64", "--json") == 0
    by_family = json.loads(capsys.readouterr().out)
    assert by_name["name"] == "ghostnetv3_050" and (by_name["params"], by_name["macs"]) == (by_family["params"],
                                                                                         by_family["macs"])
    assert run("info", "--model", "ghostnetv3_050", "--width", "0.5") == 2
    assert "names the family and width" in capsys.readouterr().err
