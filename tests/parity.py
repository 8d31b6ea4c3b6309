"""The timm parity fixtures (made by tools/make_parity_fixtures.py), shared by test_weights.py (GhostNet) and
test_ghostnet_v2_v3.py (GhostNetV2/V3). The weights are rebuilt from a fixture's seeds with numpy alone."""
import importlib.util
import json
import pathlib

import numpy as np
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4


def _import_recipe():
    spec = importlib.util.spec_from_file_location("make_parity_fixtures", ROOT / "tools" / "make_parity_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = _import_recipe()


class Checkpoint:
    """One fixture: timm's logits, the rebuilt state dict and a .safetensors file holding it."""

    def __init__(self, arch, directory):
        with np.load(ROOT / "tests" / "fixtures" / f"parity_{arch}.npz") as data:
            arrays = dict(data)
        self.manifest = json.loads(str(arrays["manifest"]))
        self.width = self.manifest["width"]
        self.state = recipe.state_dict(self.manifest, arrays)
        self.logits = {k: v for k, v in arrays.items() if k.startswith("logits_")}
        self.path = directory / f"{arch}.safetensors"
        save_file(self.state, str(self.path))

    def case(self, height, width, count, seed):
        """(images in [0, 255], timm's logits for them)."""
        return recipe.synthetic_images(height, width, count, seed), self.logits[f"logits_{height}x{width}"]


def load_checkpoints(archs, tmp_path_factory, cls=Checkpoint):
    """{arch: cls(arch)} with the .safetensors files in one temporary folder (for a module-scoped fixture)."""
    directory = tmp_path_factory.mktemp("checkpoints")
    return {arch: cls(arch, directory) for arch in archs}


def one_line_error(excinfo):
    """The message of a pytest.raises result, checked to be one line without a traceback."""
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message
    return message
