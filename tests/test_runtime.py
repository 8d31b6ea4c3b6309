"""The one runtime chain (ghostnet_tf/runtime.py): LiteRT, else tflite_runtime, else tf.lite, chosen by what imports;
each choice runs the same file to the same outputs."""
import sys

import numpy as np
import pytest

from ghostnet_tf import runtime


def hide(monkeypatch, *packages):
    """Make ``packages`` unimportable for one test (an entry of None in sys.modules fails every import of it)."""
    monkeypatch.setattr(runtime, "_cached", None)
    for name in packages:
        monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, f"{name}.interpreter", None)


def outputs(path, image):
    interpreter = runtime.make_interpreter(model_path=path, use_xnnpack=False)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], image.astype(detail["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_litert_comes_first(monkeypatch):
    monkeypatch.setattr(runtime, "_cached", None)
    assert runtime.get_runtime().name == "ai-edge-litert"


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_without_litert_and_tflite_runtime_tf_lite_runs_the_same_file(monkeypatch, models):
    image = np.random.default_rng(0).integers(-128, 128, (1, 32, 32, 3))
    expected = outputs(models["int8"], image)
    hide(monkeypatch, "ai_edge_litert", "tflite_runtime")
    chosen = runtime.get_runtime()
    assert chosen.name == "tensorflow" and chosen.version
    np.testing.assert_array_equal(outputs(models["int8"], image), expected)  # the same builtin int8 kernels


def test_no_runtime_at_all_says_what_to_install(monkeypatch):
    hide(monkeypatch, "ai_edge_litert", "tflite_runtime", "tensorflow")
    with pytest.raises(ImportError, match="no TFLite runtime found: pip install ai-edge-litert"):
        runtime.get_runtime()


def test_a_file_the_runtime_cannot_load_is_one_line(tmp_path):
    (tmp_path / "bad.tflite").write_bytes(b"TFL3 not really")
    with pytest.raises(ValueError, match="is not a TFLite model the runtime can load"):
        runtime.make_interpreter(model_path=tmp_path / "bad.tflite")


def test_silencing_from_several_threads_gives_the_terminal_back(capfd):
    """`bench compare` loads interpreters in parallel threads: overlapping silenced blocks must not leave stdout or
    stderr pointing at /dev/null (the tables printed afterwards would vanish)."""
    import os
    import threading

    from ghostnet_tf.quiet import native_output_silenced

    def work():
        for _ in range(300):
            with native_output_silenced():
                os.write(1, b"native chatter\n")
                os.write(2, b"native chatter\n")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os.write(1, b"table\n")
    os.write(2, b"progress\n")
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("table\n", "progress\n")
