"""What every benchmark runner shares: ``RunConfig`` (how to measure) and the ``Runner`` protocol (where).

A runner is the place a model is measured: ``local_runner.LocalRunner`` (this machine), ``adb_runner.AdbSession``
(a phone), ``arm.emulator.Emulator`` (an emulated ARM core). Each takes the same ``RunConfig`` and returns a
record of ``results.py``, refusing with ValueError what it cannot do, so ``compare`` plans once and runs the
plan on any of them. Kept free of heavy imports: the CLI builds configurations before it loads a runtime.
"""
from dataclasses import dataclass
from typing import Protocol

ACCELERATORS = ("gpu", "nnapi")  # benchmark_model's delegates besides the CPU's (a phone only)


@dataclass(frozen=True)
class RunConfig:
    """One measurement. ``use_xnnpack``: XNNPACK for the CPU kernels, else the builtin ones; ``accelerator``:
    a GPU/NNAPI delegate on top (the phone only); ``seed``: of the input fed to the model (benchmark_model
    feeds its own)."""
    threads: int = 1
    runs: int = 50
    warmup: int = 5
    use_xnnpack: bool = True
    accelerator: str | None = None
    seed: int = 0

    def __post_init__(self):
        if self.threads < 1 or self.runs < 1 or self.warmup < 0:
            raise ValueError(f"need threads >= 1, runs >= 1 and warmup >= 0 "
                             f"(got {self.threads}, {self.runs}, {self.warmup})")
        if self.accelerator not in (None, *ACCELERATORS):
            raise ValueError(f"accelerator {self.accelerator!r}: expected one of {', '.join(ACCELERATORS)} or none")

    @property
    def delegate(self):
        """The record's ``delegate``: the accelerator, else the CPU kernels used."""
        return self.accelerator or ("xnnpack" if self.use_xnnpack else "cpu")

    def refuse_accelerator(self, where):
        """ValueError for the runners without GPU/NNAPI delegates."""
        if self.accelerator:
            raise ValueError(f"{where} runs on the CPU: it has no {self.accelerator} delegate")


class Runner(Protocol):
    def measure(self, model_file, run_config: RunConfig) -> dict:
        """Measure ``model_file`` once as ``run_config`` says; the record (``results.make_record`` or
        ``make_arm_record``), not yet written."""
