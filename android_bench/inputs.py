"""The input contract of a .tflite file (what each input tensor takes), and the realistic input it is fed.

One definition for the runners that feed a model themselves (``bench local``, ``bench arm``; benchmark_model
on a phone feeds its own). ``convert.calibration.takes_pixels`` asks the same of a Keras model; here the
answer is read from the converted file alone.
"""
from dataclasses import dataclass

import numpy as np

from ghostnet_tf.preprocessing import model_inputs, synthetic_photo
from ghostnet_tf.runtime import quantization, quantize


@dataclass(frozen=True)
class InputContract:
    """One input tensor and what it takes. An RGB image input (1, H, W, 3) takes [0, 255] pixels or
    ImageNet-normalized values (``pixels``), quantized with the tensor's own scale and zero point."""
    index: int
    shape: tuple
    dtype: np.dtype
    quantization: tuple  # (scale, zero_point); scale 0: not quantized
    pixels: bool

    @classmethod
    def of(cls, detail, declared_pixels=True):
        """The contract of an interpreter's input ``detail``. A quantized input carries its range: scale 1 for
        pixels (the converter pins pixel models' input range), another for normalized values. A float input's
        is ``declared_pixels``: what the file's metadata declares (``input_contracts``)."""
        scale, zero_point = quantization(detail)
        pixels = declared_pixels if not scale else abs(scale - 1.0) < 1e-6
        return cls(int(detail["index"]), tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]),
                   (scale, zero_point), pixels)

    def sample(self, rng):
        """What the model really sees: for an image input a photo-like frame from the one preprocessing path,
        quantized like the tensor; for other inputs, values of the right kind."""
        if len(self.shape) == 4 and self.shape[3] == 3:
            frames = np.stack([np.round(synthetic_photo(rng, *self.shape[1:3])) for _ in range(self.shape[0])])
            values = model_inputs(frames, self.pixels)
        else:
            values = np.clip(rng.standard_normal(self.shape), -2.5, 2.5)
        if self.dtype.kind == "f":
            return values.astype(self.dtype)
        if self.dtype == np.bool_:
            return values > 0
        if not self.quantization[0]:  # integer without quantization: small non-negative values (ids, indices)
            return rng.integers(0, min(np.iinfo(self.dtype).max, 100) + 1, size=self.shape).astype(self.dtype)
        return quantize(values, {"dtype": self.dtype, "quantization": self.quantization})


def input_contracts(model_file, interpreter):
    """The contract of each input of ``model_file`` (loaded in ``interpreter``). Float inputs take what the
    file's metadata declares (this project's files say whether they normalize inside; pixels without
    metadata)."""
    from convert.metadata import file_facts

    with open(model_file, "rb") as handle:
        declared = file_facts(handle.read()).pixels
    return [InputContract.of(detail, declared) for detail in interpreter.get_input_details()]
