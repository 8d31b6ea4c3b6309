"""A run stopped anywhere (Ctrl-C, ``kill -9``, a full disk) resumes to the weights and history of a run never
stopped; checkpoints that are outputs of the run are refused up front; every bad --resume/--weights input is one
line naming the file (issue 21).

The runs train the tests' tiny classifier (``tiny.tiny_classifier``) on 2 classes x 8 images at 16x16, batch 8:
2 steps per epoch. A stop at a chosen moment is a ``KeyboardInterrupt`` or a real SIGKILL (the process kills
itself) raised just before a chosen file of the run is renamed into place."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from ghostnet_tf.cli import main
from ghostnet_tf.training.checkpoints import RECORD_MEMBER  # the run's record inside OUT.last.keras
from tiny import tiny_classifier

OPTIONS = {"input_size": (16, 16), "batch_size": 8, "seed": 3, "epochs": 2}
COMMON = ["--width", "0.25", "--input-size", "16", "--batch-size", "8", "--no-progress", "--seed", "3"]
TESTS = os.path.dirname(os.path.abspath(__file__))
CHILD = """import os, signal, sys
from ghostnet_tf.training import output_paths, train
from tiny import tiny_classifier
data, out, name, occurrence = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
target, seen, replace = os.path.abspath(output_paths(out).get(name, "")), [], os.replace
def killing_replace(src, dst):
    if os.path.abspath(dst) == target:
        seen.append(dst)
        if len(seen) == occurrence:
            os.kill(os.getpid(), signal.SIGKILL)
    replace(src, dst)
if occurrence:
    os.replace = killing_replace
train(data, out, show_progress=False, builder=tiny_classifier, **{options!r})
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory, write_image):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for label, name in enumerate(("red", "green")):
        (root / name).mkdir()
        for i in range(8):
            image = rng.integers(0, 120, (16, 16, 3))
            image[..., label] += 120
            write_image(root / name / f"{i}.png", image)
    return root


def run(*argv):
    return main([str(a) for a in argv])


def paths_of(out):
    from ghostnet_tf.training import output_paths

    return output_paths(str(out))


def train_tiny(data, out, **options):
    from ghostnet_tf.training import train

    return train(str(data), str(out), show_progress=False, show=lambda message: None, builder=tiny_classifier,
                 **{**OPTIONS, **options})


def last_weights(out):
    from ghostnet_tf.training import load_model

    return [np.asarray(w) for w in load_model(paths_of(out)["last"]).weights]


def read_report(out):
    return json.loads(open(paths_of(out)["report"]).read())


@pytest.fixture(scope="module")
def uninterrupted(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "m.keras"
    train_tiny(folder, out)
    return out


@pytest.fixture(scope="module")
def half_done(folder, tmp_path_factory):
    """A run of 2 epochs stopped (Ctrl-C) after its first epoch was recorded."""
    out = tmp_path_factory.mktemp("half") / "m.keras"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", stop_before(out, "none", 0, KeyboardInterrupt, after="report"))
        with pytest.raises(KeyboardInterrupt):
            train_tiny(folder, out)
    assert read_report(out)["epochs_done"] == 1
    return out


def stop_before(out, name, occurrence, exc, after=None):
    """An ``os.replace`` that raises ``exc`` instead of renaming the run's file ``name`` the ``occurrence``-th
    time (or, with ``after``, right after renaming that file the first time)."""
    replace, seen = os.replace, {}
    paths = {key: os.path.abspath(path) for key, path in paths_of(out).items()}

    def stopping(src, dst):
        key = next((k for k, p in paths.items() if p == os.path.abspath(dst)), None)
        seen[key] = seen.get(key, 0) + 1
        if key == name and seen[key] == occurrence:
            raise exc
        replace(src, dst)
        if key == after:
            raise exc
    return stopping


def copy_run(out, tmp_path):
    """The run's four files copied into tmp_path (the module's run stays as it is)."""
    for path in paths_of(out).values():
        if os.path.exists(path):
            shutil.copy(path, tmp_path)
    return tmp_path / os.path.basename(out)


def temps_left(directory):
    return [name for name in os.listdir(directory) if name.startswith(".")]


def assert_same_as_uninterrupted(out, uninterrupted):
    resumed, reference = read_report(out), read_report(uninterrupted)
    assert resumed["epochs_done"] == 2 and resumed["complete"]
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    for a, b in zip(resumed["history"], reference["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    with open(paths_of(out)["log"]) as f:
        assert len(f.read().strip().splitlines()) == 3  # header + 2 epochs
    for a, b in zip(last_weights(out), last_weights(uninterrupted)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert os.path.isfile(out) and not temps_left(os.path.dirname(out))


def resume(out, *argv):
    return run("train", "-o", out, "--resume", "--no-progress", *argv)


@pytest.mark.parametrize("name, occurrence", [("best", 1), ("log", 1), ("report", 1), ("best", 2)])
def test_ctrl_c_between_the_files_of_an_epoch_end_resumes(name, occurrence, folder, uninterrupted, tmp_path,
                                                          monkeypatch):
    """Stopped after OUT.last.keras of an epoch end was written but before the other files of that epoch end (at
    the last epoch, --resume only writes them)."""
    out = tmp_path / "m.keras"
    monkeypatch.setattr(os, "replace", stop_before(out, name, occurrence, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train_tiny(folder, out)
    monkeypatch.undo()
    assert resume(out) == 0
    assert_same_as_uninterrupted(out, uninterrupted)


def child(folder, out, name, occurrence):
    """``train`` in a process of its own that SIGKILLs itself instead of renaming the run's file ``name`` the
    ``occurrence``-th time (never with 0)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get(
        "PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", CHILD.format(options=OPTIONS), str(folder), str(out), name,
                             str(occurrence)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # a process of its own: about 20 s on 2 cores
@pytest.mark.parametrize("name, occurrence", [("best", 1), ("last", 2)])
def test_sigkill_at_an_epoch_end_resumes(name, occurrence, folder, uninterrupted, tmp_path):
    """A real ``kill -9``: after epoch 1's checkpoint is in place but not its report ("best", 1), and with epoch
    2's checkpoint complete in its temporary file ("last", 2: the hidden temporary is left behind)."""
    out = tmp_path / "m.keras"
    proc = child(folder, out, name, occurrence)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    if name == "last":
        assert temps_left(tmp_path)  # what kill -9 leaves: .m.last.keras.XXXXXXXX.last.keras
    assert resume(out) == 0
    assert_same_as_uninterrupted(out, uninterrupted)


@pytest.mark.slow  # a process of its own
def test_sigkill_once_the_log_shows_an_epoch_resumes(folder, uninterrupted, tmp_path):
    """``kill -9`` as soon as the log appears: somewhere in epoch 1's end or in epoch 2, whichever it is."""
    out = tmp_path / "m.keras"
    proc = child(folder, out, "none", 0)
    try:
        deadline = time.monotonic() + 600
        while not os.path.exists(paths_of(out)["log"]) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.kill()  # SIGKILL
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    assert resume(out) == 0
    assert_same_as_uninterrupted(out, uninterrupted)


def no_space(path):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_full_disk_at_the_report_then_resume(folder, uninterrupted, tmp_path, monkeypatch, cli_error):
    """ENOSPC while writing epoch 1's report: one line naming the file and --resume; after space is freed,
    --resume finishes the run (the ghostnet builder is the tiny one, for speed)."""
    from ghostnet_tf.training import models

    monkeypatch.setattr(models, "ghostnet_builder", tiny_classifier)
    out = tmp_path / "m.keras"
    monkeypatch.setattr(os, "replace", stop_before(out, "report", 1, no_space(paths_of(out)["report"])))
    line = cli_error("train", folder, "-o", out, "--epochs", "2", *COMMON)
    assert "No space left" in line and "m.report.json" in line and "--resume" in line, line
    monkeypatch.undo()
    assert not temps_left(tmp_path)
    assert resume(out) == 0
    assert_same_as_uninterrupted(out, uninterrupted)


def test_full_disk_while_saving_the_checkpoint_keeps_the_last_epoch(half_done, uninterrupted, tmp_path, monkeypatch,
                                                                    cli_error):
    """ENOSPC while epoch 2's checkpoint is written: the run stays at epoch 1, no temporary is left."""
    import keras

    out = copy_run(half_done, tmp_path)
    before = {name: open(path, "rb").read() for name, path in paths_of(out).items()}
    save = keras.Model.save

    def full(self, path, *args, **kwargs):
        save(self, path, *args, **kwargs)
        raise no_space(path)
    monkeypatch.setattr(keras.Model, "save", full)
    line = cli_error("train", "-o", out, "--resume", "--no-progress")
    assert "No space left" in line and "m.last.keras" in line, line
    assert {name: open(path, "rb").read() for name, path in paths_of(out).items()} == before
    assert not temps_left(tmp_path)
    monkeypatch.undo()
    assert resume(out) == 0
    assert_same_as_uninterrupted(out, uninterrupted)


@pytest.mark.parametrize("name", ["best", "last", "log", "report"])
def test_weights_that_is_a_file_of_the_run_is_refused(name, folder, tmp_path, cli_error):
    out = tmp_path / "m.keras"
    target = paths_of(out)[name]
    with open(target, "wb") as f:
        f.write(b"the input")
    line = cli_error("train", folder, "-o", out, "--epochs", "1", "--weights", target, *COMMON)
    assert "--weights" in line and "same file" in line and os.path.basename(target) in line, line
    assert open(target, "rb").read() == b"the input"
    os.symlink(target, tmp_path / "link.keras")  # the same file under another name
    from ghostnet_tf.cliutil import UsageError

    with pytest.raises((UsageError, ValueError), match="same file"):
        train_tiny(folder, out, weights=str(tmp_path / "link.keras"))
    assert sorted(os.listdir(tmp_path)) == sorted(["link.keras", os.path.basename(target)])


def test_data_that_is_a_file_of_the_run_is_refused(tmp_path):
    from ghostnet_tf.cliutil import UsageError

    out = tmp_path / "m.keras"
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 16, 16, 3), np.uint8), labels=np.array([0, 1, 0, 1]))
    os.symlink(tmp_path / "d.npz", paths_of(out)["log"])
    with pytest.raises((UsageError, ValueError), match="same file"):
        train_tiny(tmp_path / "d.npz", out)


@pytest.fixture
def pth(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(b"PK\x03\x04 not read without torch")
    return path


@pytest.mark.parametrize("command", ["train", "convert", "eval", "compare", "port"])
def test_pth_without_torch_is_one_line(command, pth, folder, tmp_path, cli_error):
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed")
    except ImportError:
        pass
    argv = {"train": ["train", folder, "-o", tmp_path / "m.keras", "--weights", pth, "--epochs", "1", *COMMON],
            "convert": ["convert", "--width", "0.25", "--weights", pth, "--input-size", "32", "-o",
                        tmp_path / "m.tflite", "--no-progress"],
            "eval": ["eval", folder, "--width", "0.25", "--weights", pth, "--input-size", "32", "--no-progress"],
            "compare": ["bench", "compare", "--models", "ghostnet_050", "--weights", pth, "--input-size", "32",
                        "--target", "local", "--no-arm", "--out", tmp_path / "run", "--cache-dir",
                        tmp_path / "cache", "--runs", "1", "--rounds", "1", "--warmup", "0", "--jobs", "1"],
            "port": ["port", pth, "-o", tmp_path / "m.keras"]}[command]
    line = cli_error(*argv)
    assert "needs torch" in line and "w.pth" in line, line
    assert not [p for p in os.listdir(tmp_path) if p.startswith("m.")]


def rewrite_member(path, member, change):
    """Rewrite the .keras zip ``path`` with ``member`` replaced by ``change(old bytes)`` (None: left out)."""
    with zipfile.ZipFile(path) as archive:
        items = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in items:
            data = change(data) if info.filename == member else data
            if data is not None:
                archive.writestr(info, data)


def edit_json(change):
    def edit(data):
        record = json.loads(data)
        change(record)
        return json.dumps(record).encode()
    return edit


def edit_report(out, change):
    path = paths_of(out)["report"]
    with open(path, "rb") as f:
        data = edit_json(change)(f.read())
    with open(path, "wb") as f:
        f.write(data)


def legacy(out):
    """The run as an older ghostnet-tf left it: no record inside OUT.last.keras, the report says everything."""
    rewrite_member(paths_of(out)["last"], RECORD_MEMBER, lambda data: None)
    return out


def truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def to_dev_zero(path):
    os.remove(path)
    os.symlink("/dev/zero", path)


@pytest.mark.parametrize("damage, message", [
    (lambda out: edit_report(legacy(out), lambda r: r["config"].update(colour="red")), "unknown config key 'colour'"),
    (lambda out: edit_report(legacy(out), lambda r: r.pop("history")), "no 'history'"),
    (lambda out: edit_report(legacy(out), lambda r: r.update(history=[{"loss": 1}])), "history"),
    (lambda out: truncate(paths_of(legacy(out))["report"]), "not valid JSON"),
    (lambda out: to_dev_zero(paths_of(legacy(out))["report"]), "not a regular file"),
    (lambda out: os.remove(paths_of(legacy(out))["report"]), "no record of the run"),
    (lambda out: rewrite_member(paths_of(out)["last"], RECORD_MEMBER,
                                edit_json(lambda r: r["config"].update(colour="red"))), "unknown config key 'colour'"),
    (lambda out: truncate(paths_of(out)["last"]), "cannot read"),
    (lambda out: to_dev_zero(paths_of(out)["last"]), "not a regular file"),
    (lambda out: os.remove(paths_of(out)["last"]), "no interrupted run"),
])
def test_bad_resume_input_is_one_line_naming_the_file(damage, message, half_done, tmp_path, cli_error):
    out = copy_run(half_done, tmp_path)
    damage(out)
    before = sorted(os.listdir(tmp_path))
    line = cli_error("train", "-o", out, "--resume", "--no-progress")
    assert message in line, line
    assert "m.report.json" in line or "m.last.keras" in line, line
    assert "File not found" not in line
    assert sorted(os.listdir(tmp_path)) == before


def test_damaged_report_is_rewritten_from_the_checkpoint(half_done, uninterrupted, tmp_path):
    """The record inside OUT.last.keras is the run's: a damaged report beside it is rebuilt, not trusted."""
    out = copy_run(half_done, tmp_path)
    truncate(paths_of(out)["report"])
    assert resume(out) == 0
    assert_same_as_uninterrupted(out, uninterrupted)


@pytest.mark.parametrize("argv, finished, message", [
    ([], True, "finished 2 epochs; --epochs must be more than 2 to extend it"),
    (["--epochs", "1"], True, "finished 2 epochs; --epochs must be more than 2 to extend it"),
    (["--epochs", "1"], False, "stopped after 1 epochs; --epochs must be more than 1 to extend it"),
])
def test_resume_epochs_message(argv, finished, message, half_done, uninterrupted, tmp_path, cli_error):
    out = copy_run(uninterrupted if finished else half_done, tmp_path)
    assert message in cli_error("train", "-o", out, "--resume", "--no-progress", *argv)


def swap_in_plain_model(out, classes):
    """A tiny model with ``classes`` outputs, without optimizer state or record, saved as OUT.last.keras."""
    model = tiny_classifier(type("C", (), {"classes": classes, "input_size": (16, 16), "dropout": 0.2}))
    model.save(paths_of(out)["last"])


@pytest.mark.parametrize("swap, message", [
    (lambda out: rewrite_member(paths_of(out)["last"], RECORD_MEMBER, edit_json(
        lambda r: r["config"].update(width=0.75))), "width 0.75"),
    (lambda out: swap_in_plain_model(legacy(out), 3), "3 classes"),
    (lambda out: swap_in_plain_model(legacy(out), 2), "no optimizer state"),
    (lambda out: edit_report(legacy(out), lambda r: r["config"].update(input_size=[24, 24])), "16x16"),
])
def test_checkpoint_of_another_run_is_refused(swap, message, half_done, tmp_path, cli_error):
    out = copy_run(half_done, tmp_path)
    swap(out)
    line = cli_error("train", "-o", out, "--resume", "--no-progress")
    assert message in line and "m.last.keras" in line, line


def test_resume_needs_no_longer_the_weights_it_started_from(half_done, tmp_path):
    """--weights is read when a run starts: resuming a run whose starting checkpoint has since gone works."""
    out = copy_run(half_done, tmp_path)
    gone = str(tmp_path / "gone" / "start.keras")
    rewrite_member(paths_of(out)["last"], RECORD_MEMBER, edit_json(lambda r: r["config"].update(weights=gone)))
    edit_report(out, lambda r: r["config"].update(weights=gone))
    assert resume(out) == 0
    assert read_report(out)["epochs_done"] == 2 and read_report(out)["config"]["weights"] == gone


@pytest.mark.parametrize("damage, message", [
    (truncate, "cannot read"),
    (to_dev_zero, "not a regular file"),
])
def test_bad_weights_is_one_line(damage, message, folder, tmp_path, cli_error, monkeypatch):
    from ghostnet_tf.training import models

    monkeypatch.setattr(models, "ghostnet_builder", tiny_classifier)
    weights = tmp_path / "w.keras"
    tiny_classifier(type("C", (), {"classes": 2, "input_size": (16, 16), "dropout": 0.2})).save(weights)
    damage(weights)
    line = cli_error("train", folder, "-o", tmp_path / "m.keras", "--epochs", "1", "--weights", weights, *COMMON)
    assert message in line and "w.keras" in line and "--weights" in line and "File not found" not in line, line
    assert not [p for p in os.listdir(tmp_path) if p.startswith("m.")]


def test_stale_temporaries_are_removed_and_others_kept(tmp_path):
    from ghostnet_tf.files import atomic_path, remove_stale_temps

    target = tmp_path / "m.last.keras"
    stale = [".m.last.keras.abc_1234.last.keras", ".m.last.keras.zz99zz99"]
    kept = [".m.last.keras.notes", ".m.keras.abcd1234.keras", "m.last.keras"]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x")
    assert sorted(remove_stale_temps(target)) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)
    with atomic_path(target) as tmp:  # the names atomic_path makes are the ones removed
        assert remove_stale_temps(target) == [os.path.basename(tmp)]
        open(tmp, "wb").close()


def test_checkpoint_that_is_not_a_regular_file_is_one_line(tmp_path, cli_error):
    """Every reader of checkpoints (``ghostnet port``, ``load_weights``, GhostNet(weights=...)) refuses /dev/zero
    and FIFOs before reading: they would never end."""
    from ghostnet_tf.weights import read_checkpoint

    os.symlink("/dev/zero", tmp_path / "zero.safetensors")
    os.mkfifo(tmp_path / "fifo.safetensors")
    for name in ("zero.safetensors", "fifo.safetensors"):
        line = cli_error("port", tmp_path / name, "-o", tmp_path / "m.keras")
        assert "not a regular file" in line and name in line, line
        with pytest.raises(ValueError, match="not a regular file"):
            read_checkpoint(tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == ["fifo.safetensors", "zero.safetensors"]


def test_port_refuses_to_write_over_its_source(tmp_path):
    from ghostnet_tf.cliutil import UsageError
    from ghostnet_tf.port import port_checkpoint

    src = tmp_path / "w.weights.h5"
    src.write_bytes(b"the input")
    with pytest.raises(UsageError, match="same file as src"):
        port_checkpoint(src, src)
    assert src.read_bytes() == b"the input"
