"""Make the timm parity fixtures of tests/test_weights.py: timm's own logits for seeded random weights.

torch and timm are never project dependencies. Install them in a scratch venv and run from the repo root:

    python -m venv /tmp/timm && /tmp/timm/bin/pip install torch==2.14.1 torchvision==0.29.1 timm
    /tmp/timm/bin/python tools/make_parity_fixtures.py

For each of timm's ghostnet_050/100/130, ghostnetv2_100/130, ghostnetv3_050/100 and repghostnet_050/100/130
(or the names given on the command line) this fills every parameter with `synthetic_tensor` (numpy,
seeded per tensor name), calibrates the BatchNorm running statistics on random images (random BN
statistics make the logits explode, which would hide real mismatches behind float noise), runs timm
in eval mode on `synthetic_images` and writes tests/fixtures/parity_ghostnet_XXX.npz with:
  manifest      JSON: width, weight seed, state-dict names and shapes, and the input cases
  <bn>.running_mean / <bn>.running_var   the calibrated statistics (the only stored weights)
  logits_HxW    timm's pre-softmax logits for the case's images
The test rebuilds the full state dict with numpy alone from this file and the functions below,
which are all it imports from here (torch and timm are imported only by `main`).
"""
import json
import pathlib
import sys
import zlib

import numpy as np

IMAGENET_MEAN = np.asarray((0.485, 0.456, 0.406), np.float32)
IMAGENET_STD = np.asarray((0.229, 0.224, 0.225), np.float32)
WIDTHS = {"ghostnet_050": 0.5, "ghostnet_100": 1.0, "ghostnet_130": 1.3}
# GhostNetV2 and V3 (timm >= 1.0.x), in their own tests; V3 in timm's multi-branch training form.
WIDTHS_V2_V3 = {"ghostnetv2_100": 1.0, "ghostnetv2_130": 1.3, "ghostnetv3_050": 0.5, "ghostnetv3_100": 1.0}
# RepGhostNet (timm >= 1.0.x), in tests/test_repghost.py, in timm's training form (with the identity branches).
WIDTHS_REP = {"repghostnet_050": 0.5, "repghostnet_100": 1.0, "repghostnet_130": 1.3}
# (height, width, images, seed) of the compared inputs; the odd size checks padding at every stride
# (and, for V2, the DFC attention's pooling and nearest upsampling at odd sizes).
CASES = {"ghostnet_050": [(224, 224, 2, 1)], "ghostnet_100": [(224, 224, 2, 1), (193, 257, 2, 2)],
         "ghostnet_130": [(224, 224, 2, 1)], "ghostnetv2_100": [(224, 224, 2, 1), (193, 257, 2, 2)],
         "ghostnetv2_130": [(224, 224, 2, 1)], "ghostnetv3_050": [(224, 224, 2, 1)],
         "ghostnetv3_100": [(224, 224, 2, 1)], "repghostnet_050": [(224, 224, 2, 1)],
         "repghostnet_100": [(224, 224, 2, 1), (193, 257, 2, 2)], "repghostnet_130": [(224, 224, 2, 1)]}
WEIGHT_SEED = 1911
CALIBRATION = (8, 16, 1000)  # batches, images per batch, first seed (disjoint from the case seeds)
FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def is_running_stat(name):
    return name.endswith((".running_mean", ".running_var", ".num_batches_tracked"))


def synthetic_tensor(name, shape, seed=WEIGHT_SEED):
    """A reproducible random parameter: He-normal kernels, gamma in [0.5, 1.5], small biases/betas."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if len(shape) > 1:
        fan_in = int(np.prod(shape[1:]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    if name.endswith(".weight"):  # a 1-D weight is a BatchNorm gamma
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def synthetic_images(height, width, count, seed):
    """Integer-valued RGB noise in [0, 255], float32, NHWC."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, height, width, 3)).astype(np.float32)


def normalize(images):
    """timm's eval normalisation of [0, 255] NHWC images (float32)."""
    return (images / np.float32(255.0) - IMAGENET_MEAN) / IMAGENET_STD


def _stat_names(manifest):
    return [(name, shape) for name, shape in manifest["params"] if is_running_stat(name)]


def encode_stats(manifest, stats):
    """(uint8 codes of all statistics in manifest order, float32 [min, max] per tensor)."""
    codes, ranges = [], []
    for name, _ in _stat_names(manifest):
        value = np.log(stats[name]) if name.endswith(".running_var") else stats[name]
        low, high = float(value.min()), float(value.max())
        ranges.append((low, high))
        codes.append(np.round((value - low) / max(high - low, 1e-12) * 255).astype(np.uint8).ravel())
    return np.concatenate(codes), np.asarray(ranges, np.float32)


def decode_stats(manifest, codes, ranges):
    """{name: float32 statistic} from `encode_stats`."""
    stats, start = {}, 0
    for (name, shape), (low, high) in zip(_stat_names(manifest), ranges):
        size = int(np.prod(shape))
        value = low + codes[start:start + size].astype(np.float32) * np.float32((high - low) / 255)
        stats[name] = (np.exp(value) if name.endswith(".running_var") else value).astype(np.float32).reshape(shape)
        start += size
    return stats


def state_dict(manifest, arrays):
    """The full float32 state dict (timm names and layouts) of a fixture's arrays, rebuilt with numpy alone."""
    stats = decode_stats(manifest, arrays["stat_codes"], arrays["stat_ranges"]) if "stat_codes" in arrays else arrays
    return {name: stats[name] if is_running_stat(name) else synthetic_tensor(name, tuple(shape), manifest["seed"])
            for name, shape in manifest["params"]}


def _make_fixture(arch):
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False)
    params = [(k, list(v.shape)) for k, v in model.state_dict().items() if not k.endswith(".num_batches_tracked")]
    manifest = {"arch": arch, "width": {**WIDTHS, **WIDTHS_V2_V3, **WIDTHS_REP}[arch], "seed": WEIGHT_SEED, "params": params,
                "cases": [list(case) for case in CASES[arch]]}
    weights = {k: torch.from_numpy(synthetic_tensor(k, tuple(s))) for k, s in params if not is_running_stat(k)}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and all(is_running_stat(k) for k in missing), (missing, unexpected)

    # Cumulative-average BN statistics over random images in train mode.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    batches, per_batch, first_seed = CALIBRATION
    with torch.no_grad():
        for i in range(batches):
            images = normalize(synthetic_images(224, 224, per_batch, first_seed + i))
            model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    model.eval()

    codes, ranges = encode_stats(manifest, {k: v.numpy() for k, v in model.state_dict().items()})
    decoded = {k: torch.from_numpy(v) for k, v in decode_stats(manifest, codes, ranges).items()}
    missing, unexpected = model.load_state_dict(decoded, strict=False)
    assert not unexpected and all(not is_running_stat(k) or k.endswith(".num_batches_tracked") for k in missing)
    arrays = {"manifest": np.asarray(json.dumps(manifest)), "stat_codes": codes, "stat_ranges": ranges}
    with torch.no_grad():
        for height, width, count, seed in CASES[arch]:
            images = normalize(synthetic_images(height, width, count, seed))
            logits = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
            arrays[f"logits_{height}x{width}"] = logits
            print(f"{arch} {height}x{width}: logits mean {logits.mean():+.3f} std {logits.std():.3f} "
                  f"max |.| {np.abs(logits).max():.3f}")
    path = FIXTURES / f"parity_{arch}.npz"
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


def main():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for arch in sys.argv[1:] or [*WIDTHS, *WIDTHS_V2_V3, *WIDTHS_REP]:
        _make_fixture(arch)


if __name__ == "__main__":
    main()
