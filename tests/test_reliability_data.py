"""``ghostnet train``'s inputs, checked before any work: undecodable images counted without shifting the epoch
layout, devices and batch checked against the host, every size and count bounded (command line and Python
API), non-regular data files refused, class folders that are empty or repeat another refused, --val classes
equal to the training classes."""
import json
import os
import time

import numpy as np
import pytest

from ghostnet_tf.cli import main
from ghostnet_tf.spec import MAX_CLASSES
from tiny import tiny_classifier

CLASSES = ("a", "b", "c")
OPTIONS = {"input_size": (16, 16), "batch_size": 8, "seed": 3}
COMMON = ["--width", "0.25", "--input-size", "16", "--batch-size", "8", "--no-progress", "--epochs", "1"]


def make_folder(root, write_image, classes=CLASSES, count=8, empty=()):
    """``count`` 8x8 images per class folder (PNG and JPEG alternating), tinted by class; ``empty``: class folders
    left without images."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(0 if name in empty else count):
            image = rng.integers(0, 120, (8, 8, 3))
            image[..., label % 3] += 120
            write_image(root / name / f"{i}.{'png' if i % 2 else 'jpg'}", image)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory, write_image):
    return make_folder(tmp_path_factory.mktemp("data"), write_image)


def run(*argv):
    return main([str(a) for a in argv])


def train_tiny(data, out, **options):
    from ghostnet_tf.training import train

    return train(str(data), str(out), show_progress=False, show=lambda message: None, builder=tiny_classifier,
                 **{**OPTIONS, **options})


def one_line_error(capsys, *needles):
    """The command failed with exactly one stderr line containing every needle, and no traceback."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def corrupt_jpegs(root, write_image):
    """Two JPEGs that pass the header check but do not decode: garbage after the marker, and a cut-off file."""
    (root / "c" / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    write_image(root / "c" / "whole.jpg", np.full((64, 64, 3), 90))
    data = (root / "c" / "whole.jpg").read_bytes()
    (root / "c" / "truncated.jpg").write_bytes(data[:len(data) // 2])
    (root / "c" / "whole.jpg").unlink()


# 1. Undecodable images --------------------------------------------------------------------------------------

def test_undecodable_images_are_counted_before_training(tmp_path, write_image):
    from ghostnet_tf.training import read_samples

    root = make_folder(tmp_path / "data", write_image)
    corrupt_jpegs(root, write_image)
    samples = read_samples(root, "DATA")
    assert len(samples) == 24 and samples.skipped == 2
    assert not any(os.path.basename(p) in ("garbage.jpg", "truncated.jpg") for p in samples.paths)


def test_a_corrupt_jpeg_does_not_shift_the_epochs(tmp_path, write_image):
    """24 good images + 2 corrupt ones, batch 8: 3 steps in every epoch (the corrupt files used to be dropped
    from the stream, so the last epoch ran short), the count in the report."""
    from ghostnet_tf.training import load_model

    root = make_folder(tmp_path / "data", write_image)
    corrupt_jpegs(root, write_image)
    report = train_tiny(root, tmp_path / "m.keras", epochs=2)
    assert report["skipped"] == 2 and report["train_images"] == 24 and report["steps_per_epoch"] == 3
    assert report["complete"] and all(row["loss"] > 0 for row in report["history"])
    assert int(np.asarray(load_model(str(tmp_path / "m.last.keras")).optimizer.iterations)) == 6


def test_extreme_aspect_ratio_images_are_skipped_and_counted(tmp_path, write_image):
    """A 2x200 strip would need a huge intermediate when its short side is scaled to the input size."""
    from ghostnet_tf.training import read_samples

    root = make_folder(tmp_path / "data", write_image)
    write_image(root / "a" / "strip.png", np.zeros((2, 200, 3)))
    samples = read_samples(root, "DATA")
    assert len(samples) == 24 and samples.skipped == 1


# 2. Devices ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["--devices", "99"], "--devices 99"),
    (["--devices", "2", "--batch-size", "9"], "multiple of --devices 2"),
])
def test_devices_are_checked_before_any_work(argv, needle, folder, tmp_path, capsys):
    start = time.monotonic()
    assert run("train", folder, "-o", tmp_path / "m.keras", *COMMON, *argv) == 2
    one_line_error(capsys, needle)
    assert time.monotonic() - start < 30 and os.listdir(tmp_path) == []


def test_devices_in_the_python_api(folder, tmp_path):
    with pytest.raises(ValueError, match="--devices 99"):
        train_tiny(folder, tmp_path / "m.keras", devices=99)
    with pytest.raises(ValueError, match="multiple of --devices 2"):
        train_tiny(folder, tmp_path / "m.keras", devices=2, batch_size=3)


# 3 and 5. Bounds ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["train", "{data}", "--input-size", "100000"],
    ["train", "{data}", "--classes", "100000000"],
    ["train", "{data}", "--classes", "1e8"],
    ["train", "{data}", "--epochs", "1000000000"],
    ["train", "{data}", "--batch-size", "1000000000"],
    ["train", "{data}", "--devices", "100000000"],
    ["train", "{data}", "--seed", str(2 ** 40)],
    ["info", "--classes", "1000000000"],
    ["info", "--classes", "1e9"],
    ["info", "--input-size", "100000"],
])
def test_command_line_sizes_are_bounded(argv, folder, tmp_path, capsys):
    argv = [a.format(data=folder) for a in argv]
    out = ["-o", tmp_path / "m.keras"] if argv[0] == "train" else []
    with pytest.raises(SystemExit) as stop:
        run(*argv, *out)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "expected" in err.splitlines()[-1]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("options, needle", [
    ({"input_size": (100000, 100000)}, "--input-size"),
    ({"input_size": (16, 0)}, "--input-size"),
    ({"classes": 10 ** 8}, "--classes"),
    ({"classes": -1}, "--classes"),
    ({"epochs": 10 ** 9}, "--epochs"),
    ({"epochs": 2.5}, "--epochs"),
    ({"batch_size": 10 ** 9}, "--batch-size"),
    ({"seed": 2 ** 40}, "--seed"),
    ({"dropout": 1.5}, "dropout"),
    ({"weight_decay": float("nan")}, "--weight-decay"),
    ({"devices": 0}, "--devices"),
])
def test_python_api_sizes_are_bounded(options, needle, folder, tmp_path):
    with pytest.raises(ValueError, match=needle):
        train_tiny(folder, tmp_path / "m.keras", **options)
    assert os.listdir(tmp_path) == []


def test_train_config_is_checked_as_given(folder, tmp_path):
    from ghostnet_tf.training import TrainConfig, train

    config = TrainConfig(input_size=(4096, 4096), classes=3, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="--input-size"):
        train(str(folder), str(tmp_path / "m.keras"), config=config, show_progress=False, builder=tiny_classifier)


def write_npz(path, labels, count=16, **extra):
    images = np.random.default_rng(0).integers(0, 256, (count, 8, 8, 3)).astype(np.uint8)
    np.savez(path, images=images, labels=np.asarray(labels), **extra)
    return path


@pytest.mark.parametrize("labels, needle", [
    ([0, 1] * 7 + [-1, 0], "integers from 0"),
    (np.linspace(0, 1, 16), "integers from 0"),
    ([0, 1] * 7 + [10 ** 12, 0], "integers from 0"),
    ([0, 1] * 7 + [MAX_CLASSES, 0], "integers from 0"),
])
def test_npz_labels_must_be_class_indices(labels, needle, tmp_path, capsys):
    data = write_npz(tmp_path / "d.npz", labels)
    assert run("train", data, "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, needle, "d.npz")
    assert sorted(os.listdir(tmp_path)) == ["d.npz"]


def test_npz_labels_beyond_its_class_names(tmp_path, capsys):
    data = write_npz(tmp_path / "d.npz", [0, 1, 2, 3] * 4, classes=np.asarray(["x", "y", "z"]))
    assert run("train", data, "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, "d.npz", "3 class names")


def test_npz_class_names_and_outputs_agree(tmp_path):
    """An unnamed .npz with --classes 5: five outputs, five class names."""
    report = train_tiny(write_npz(tmp_path / "d.npz", [0, 1] * 8), tmp_path / "m.keras", classes=5, epochs=1)
    assert report["config"]["classes"] == 5 and report["config"]["class_names"] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "folder_named_npz"])
def test_data_that_is_not_a_regular_file_is_refused(kind, tmp_path, capsys):
    data = tmp_path / "d.npz"
    if kind == "dev_zero":
        data.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(data)
    else:
        data.mkdir()
    for option in ("DATA", "--val"):
        argv = [data] if option == "DATA" else [write_npz(tmp_path / "ok.npz", [0, 1] * 8), "--val", data]
        assert run("train", *argv, "-o", tmp_path / "m.keras", *COMMON) == 2
        one_line_error(capsys, option, "d.npz")
    assert not [p for p in os.listdir(tmp_path) if p.startswith("m.")]


# 4. Class folders ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("empty", ["a", "c"])
def test_an_empty_class_folder_is_refused(empty, tmp_path, write_image, capsys):
    root = make_folder(tmp_path / "data", write_image, empty=(empty,))
    assert run("train", root, "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, "DATA", os.path.join(str(root), empty))
    assert os.listdir(tmp_path) == ["data"]


def test_a_class_folder_of_only_corrupt_images_is_refused(tmp_path, write_image, capsys):
    root = make_folder(tmp_path / "data", write_image, empty=("c",))
    (root / "c" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    assert run("train", root, "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, os.path.join(str(root), "c"), "1 unreadable")


@pytest.mark.parametrize("target", ["data", "class", "parent"])
def test_a_class_folder_repeating_other_images_is_refused(target, tmp_path, write_image, capsys):
    root = make_folder(tmp_path / "data", write_image)
    (root / "z").symlink_to({"data": root, "class": root / "a", "parent": tmp_path}[target])
    assert run("train", root, "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, "DATA", os.path.join(str(root), "z"))


def test_val_classes_must_be_the_training_classes(folder, tmp_path, write_image, capsys):
    other = make_folder(tmp_path / "val", write_image, classes=("a", "b", "d"), count=2)
    assert run("train", folder, "--val", other, "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, "--val", "'d'")
    fewer = make_folder(tmp_path / "fewer", write_image, classes=("a", "b"), count=2)
    assert run("train", folder, "--val", fewer, "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, "--val")
    empty = make_folder(tmp_path / "empty", write_image, count=2, empty=("b",))
    assert run("train", folder, "--val", empty, "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, "--val", os.path.join(str(empty), "b"))


def test_classes_option_must_match_the_class_folders(folder, tmp_path, capsys):
    assert run("train", folder, "--classes", "5", "-o", tmp_path / "m.keras", *COMMON) == 2
    one_line_error(capsys, "--classes 5", "3 class folders")


# Siblings ---------------------------------------------------------------------------------------------------

@pytest.fixture
def alarm():
    """``alarm()``: from now on, fail instead of hanging (a blocking open() is interrupted after 20 s)."""
    import signal

    def timeout(signum, frame):
        raise TimeoutError("blocked")

    previous = signal.signal(signal.SIGALRM, timeout)
    yield lambda: signal.alarm(20)
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_a_fifo_named_like_an_image_is_not_read(tmp_path, write_image, alarm):
    from ghostnet_tf.preprocessing import find_images

    root = make_folder(tmp_path / "data", write_image, count=2)
    os.mkfifo(root / "a" / "pipe.jpg")
    (root / "b" / "zero.png").symlink_to("/dev/zero")
    alarm()
    assert [os.path.basename(p) for p in find_images(root / "a")] == ["0.jpg", "1.png"]
    assert [os.path.basename(p) for p in find_images(root / "b")] == ["0.jpg", "1.png"]


def test_port_refuses_a_source_that_is_not_a_regular_file(tmp_path, capsys, alarm):
    os.mkfifo(tmp_path / "ckpt.safetensors")
    alarm()
    assert run("port", tmp_path / "ckpt.safetensors", "-o", tmp_path / "m.weights.h5") == 2
    one_line_error(capsys, "ckpt.safetensors", "not a regular file")


@pytest.mark.parametrize("options, needle", [
    ({"crop_pct": 1e-6}, "--crop-pct"),
    ({"crop_pct": 1.5}, "--crop-pct"),
    ({"width": 100.0}, "--width"),
    ({"interpolation": "cubic"}, "--interpolation"),
])
def test_transform_options_are_bounded(options, needle, folder, tmp_path):
    with pytest.raises(ValueError, match=needle):
        train_tiny(folder, tmp_path / "m.keras", **options)


def test_train_crop_pct_option_is_bounded(folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run("train", folder, "-o", tmp_path / "m.keras", "--crop-pct", "0.00001")
    assert "crop_pct must be in [0.1, 1], got 1e-05" in capsys.readouterr().err


def test_transform_sizes_are_bounded(tmp_path):
    """A Transform (also the one recorded in a .keras file) cannot ask for a 10**5-pixel resize."""
    import zipfile

    from ghostnet_tf.preprocessing import TRANSFORM_MEMBER, Transform, read_transform

    with pytest.raises(ValueError, match="Transform: size"):
        Transform((100000, 100000))
    with pytest.raises(ValueError, match="crop_pct"):
        Transform((32, 32), 1e-6)
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(TRANSFORM_MEMBER, json.dumps({"size": [100000, 100000], "crop_pct": 1.0,
                                                       "interpolation": "bicubic"}))
    with pytest.raises(ValueError, match="m.keras"):
        read_transform(path)
