"""convert/metadata.py on its own: what ``attach`` writes ``read`` gives back, byte for byte the same every time,
and bad input is refused in one line (the clients that read it are in test_clients.py)."""
import numpy as np
import pytest

from convert import metadata
from convert.converter import convert_bytes
from ghostnet_tf.runtime import make_interpreter

LABELS = tuple(f"class {i} é" for i in range(10))  # spaces and non-ASCII survive the labels file
TRANSFORM = {"size": [32, 32], "crop_pct": 1.0, "interpolation": "bicubic"}


def info(**changes):
    fields = dict(name="tiny", description="a test classifier", version="0.1", author="ghostnet-tf",
                  license="Apache-2.0", labels=LABELS, mean=0.0, std=1.0, transform=TRANSFORM)
    return metadata.ModelInfo(**{**fields, **changes})


@pytest.fixture(scope="module")
def plain(trained_tiny):
    """The converter's float32 file before any metadata."""
    return convert_bytes(trained_tiny, "float32", show_progress=False)[0]


def test_read_gives_back_what_attach_wrote(plain):
    assert metadata.read(plain) is None
    found = metadata.read(metadata.attach(plain, info()))
    assert {k: found[k] for k in ("name", "description", "version", "author", "license")} == {
        "name": "tiny", "description": "a test classifier", "version": "0.1", "author": "ghostnet-tf",
        "license": "Apache-2.0"}
    assert found["min_parser_version"] == "1.5.0"  # custom metadata (the transform) came with schema 1.5.0
    assert found["input"] == {"name": "image", "color_space": "RGB", "default_size": [32, 32], "mean": [0.0],
                              "std": [1.0]}
    assert found["output"] == {"name": "probability", "labels_file": "labels.txt"}
    assert found["labels"] == list(LABELS) and found["transform"] == TRANSFORM


def test_attach_is_deterministic_and_keeps_the_model(plain):
    first, second = metadata.attach(plain, info()), metadata.attach(plain, info())
    assert first == second
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    outputs = []
    for content in (plain, first):
        interpreter = make_interpreter(model_content=content)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(*outputs)


@pytest.mark.parametrize("changes, message", [
    (dict(labels=LABELS[:9]), "9 labels for an output of 10 classes"),
    (dict(labels=("a\nb",) + LABELS[1:]), "without line breaks"),
    (dict(mean=None, std=None), "a float32 input needs mean and std"),
    (dict(std=None), "give both mean and std"),
    (dict(std=0.0), "std not 0"),
])
def test_bad_metadata_is_refused_in_one_line(plain, changes, message):
    with pytest.raises(ValueError, match=message):
        metadata.attach(plain, info(**changes))


def test_attach_twice_and_corrupt_files_are_refused(plain):
    with pytest.raises(ValueError, match="already has TFLITE_METADATA"):
        metadata.attach(metadata.attach(plain, info()), info())
    with pytest.raises(ValueError, match="not a TFLite model"):
        metadata.read(b"not a model at all")
    content = bytearray(metadata.attach(plain, info(labels=None)))
    start = bytes(content).index(b"M001") - 4  # the metadata flatbuffer: break its identifier
    content[start + 4:start + 8] = b"XXXX"
    with pytest.raises(ValueError, match="corrupt TFLITE_METADATA"):
        metadata.read(bytes(content))
