"""XNNPACK takes a GhostNetV2-style int8 graph whole (one partition), and the audit says how many there are,
so a rewrite or a new layer that drops ops out of the delegate shows in every `ghostnet convert` report."""
import numpy as np
import pytest

from convert import convert_bytes, rewrites
from convert.verify import audit
from ghostnet_tf.dfc import dfc_attention
from ghostnet_tf.layers import GhostModule
from tiny import TINY_SIZE, tiny_model


def dfc_ghost(x):
    """A ghost module gated by DFC attention, as GhostNetV2 has it (16x16 -> an 8x8 gate)."""
    return dfc_attention(x, GhostModule(8, name="blocks.2.0.ghost1")(x), "blocks.2.0.ghost1")


@pytest.fixture(scope="module")
def model():
    return tiny_model(extra_layer=dfc_ghost, activation=None)


@pytest.fixture(scope="module")
def partitions(model):
    """The XNNPACK audit of the int8 file, with and without the depthwise-pool rewrite."""
    return {rewrite: audit(convert_bytes(model, "int8", calibration_steps=8, show_progress=False,
                                         rewrite=names)[0], "int8")["xnnpack"]
            for rewrite, names in (("auto", None), ("none", ()))}


def test_v2_style_int8_runs_in_one_partition(partitions):
    found = partitions["auto"]
    assert found["partitions"] == 1 and "AVERAGE_POOL_2D" not in found["not_delegated"]
    # only the edges stay outside: the QUANTIZE of the uint8 input and output (no SOFTMAX: logits)
    assert found["not_delegated"] == {"QUANTIZE": 2} and found["delegated_ops"] == found["ops"] - 2


def test_the_int8_average_pool_splits_the_graph(partitions):
    """Why the rewrite exists: XNNPACK has no int8 average pool, so the gate's pool leaves the delegate."""
    found = partitions["none"]
    assert found["partitions"] > 1 and found["not_delegated"]["AVERAGE_POOL_2D"] == 1


def test_depthwise_pool_is_exact_in_float(model):
    rewritten, applied = rewrites.apply(model, TINY_SIZE, ("depthwise-pool",))
    assert applied == ["depthwise-pool"]
    pixels = np.random.default_rng(2).uniform(0, 255, (2, *TINY_SIZE, 3)).astype("float32")
    expected = model(pixels, training=False).numpy()
    assert np.abs(rewritten(pixels, training=False).numpy() - expected).max() <= 1e-5 * np.abs(expected).max()
