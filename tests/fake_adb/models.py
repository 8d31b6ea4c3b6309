"""Tiny real TFLite models (float32 and full-int8), converted once per test session in a subprocess.

A subprocess keeps TensorFlow out of the test process (whose peak RSS the local runner reports), and the
conversion does not depend on the concurrently written ``convert`` package.
"""
import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CONVERT = r'''
import sys
import numpy as np
import keras
import tensorflow as tf

out = sys.argv[1]
inputs = keras.Input((32, 32, 3))
x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
x = keras.layers.Conv2D(16, 1, activation="relu")(x)
x = keras.layers.GlobalAveragePooling2D()(x)
outputs = keras.layers.Dense(10)(x)
model = keras.Model(inputs, outputs)

open(out + "/tiny_float.tflite", "wb").write(tf.lite.TFLiteConverter.from_keras_model(model).convert())

def representative():
    rng = np.random.default_rng(0)
    for _ in range(8):
        yield [rng.standard_normal((1, 32, 32, 3)).astype("float32")]

converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
open(out + "/tiny_int8.tflite", "wb").write(converter.convert())
'''


@functools.cache
def tiny_models():
    """{"float": Path, "int8": Path} of two converted 32x32x3 -> 10 models (built once per session)."""
    folder = Path(tempfile.mkdtemp(prefix="bench_models_"))
    subprocess.run([sys.executable, "-c", _CONVERT, str(folder)], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    return {"float": folder / "tiny_float.tflite", "int8": folder / "tiny_int8.tflite"}
