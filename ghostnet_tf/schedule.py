"""The training learning-rate schedule, a Keras-serializable class so that ``OUT.last.keras`` (saved with its
optimizer) reloads. Imports nothing from the package, like ``ghostnet_tf.layers`` (registered on Keras import)."""
import math

import keras
from keras import ops

MIN_LR_FRACTION = 0.01  # cosine decays to 1 % of the peak rate


@keras.saving.register_keras_serializable(package="ghostnet_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to ``peak * floor``."""

    def __init__(self, peak, warmup_steps, total_steps, floor=MIN_LR_FRACTION):
        self.peak, self.warmup_steps, self.total_steps, self.floor = peak, warmup_steps, total_steps, floor

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / max(1.0, float(self.warmup_steps))
        progress = ops.clip((step - self.warmup_steps) / max(1.0, float(self.total_steps - self.warmup_steps)),
                            0.0, 1.0)
        cosine = self.peak * (self.floor + (1.0 - self.floor) * 0.5 * (1.0 + ops.cos(math.pi * progress)))
        return ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "floor": self.floor}
