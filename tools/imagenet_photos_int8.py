"""int8 fidelity of GhostNet-1.0x at 224x224 on real ImageNet photos (README, "int8 on real photos at 224").

No ImageNet-trained GhostNet can be downloaded here, so two sets of weights are measured:
``--weights random`` (seeded Keras initialization: near-uniform outputs, the case the converter warns about)
and the CIFAR-10 reference model's trained weights (``--weights tests/fixtures/cifar10_ghostnet_100.safetensors``):
the same network, every layer trained with real BatchNorm statistics, run at 224 on photos it never saw.
That is a fidelity measurement (int8 against float on the same photos), not an accuracy one.

    python tools/imagenet_photos_int8.py --photos imagenet-sample-1000 --weights random --out random.json
    python tools/imagenet_photos_int8.py --photos imagenet-sample-1000 \\
        --weights tests/fixtures/cifar10_ghostnet_100.safetensors --out trained.json

``imagenet-sample-1000`` is ../shared/data/imagenet-sample-1000.tar unpacked (1,000 photos, one per class).
Every 5th photo (sorted order) calibrates, the other 800 are held out for fidelity and the per-layer error.
"""
import argparse
import dataclasses
import json
import os
import sys
import tempfile

import numpy as np

CALIBRATION_EVERY = 5  # photo i calibrates when i % 5 == 0: 200 calibration, 800 held-out photos
PER_LAYER_IMAGES = 100  # held-out photos through TF's QuantizationDebugger


def photos(folder, size):
    """All photos of ``folder`` in sorted order through timm's evaluation transform (the project's one path)."""
    from convert.calibration import load_folder
    from ghostnet_tf.preprocessing import Transform

    images = load_folder(folder, size, None, "--photos", transform=Transform(size=size)).images
    index = np.arange(len(images))
    return images[index % CALIBRATION_EVERY == 0], images[index % CALIBRATION_EVERY != 0]


def build(weights, size):
    import keras

    from ghostnet_tf import GhostNet

    if weights == "random":
        keras.utils.set_random_seed(0)
        return GhostNet(width=1.0, input_shape=(*size, 3)), "random (seed 0), 1000 classes"
    return GhostNet(width=1.0, input_shape=(*size, 3), classes=10, weights=weights), os.path.basename(weights)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True, help="the unpacked imagenet-sample-1000 folder")
    parser.add_argument("--weights", required=True, help="'random' or a GhostNet-1.0x weights file (10 classes)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", required=True, help="JSON report")
    args = parser.parse_args()

    from convert import ConversionJob, ConversionSpec, convert

    size = (args.size, args.size)
    calibration, held_out = photos(args.photos, size)
    model, weights = build(args.weights, size)
    spec = ConversionSpec(calibration=calibration, calibration_steps=len(calibration), eval_images=held_out,
                          eval_count=len(held_out))
    with tempfile.TemporaryDirectory() as directory:
        report = convert(model, os.path.join(directory, "int8.tflite"), spec).to_json()
    # The per-layer error on fewer held-out photos: the debugger holds every tensor of every image in memory.
    job = ConversionJob(model, dataclasses.replace(spec, eval_count=PER_LAYER_IMAGES), verify=True)
    with job.export() as export:
        layers = job.per_layer(export)
    result = {"weights": weights, "input_size": list(size), "calibration_photos": len(calibration),
              "held_out_photos": len(held_out), "fidelity": report["fidelity"], "warnings": report["warnings"],
              "rewrites": report["rewrites"], "per_layer_images": PER_LAYER_IMAGES, "per_layer": layers}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    fidelity = report["fidelity"]
    steps = np.array([row["rmse_over_scale"] for row in layers if row["rmse_over_scale"] is not None])
    print(f"{weights}: top-1 agreement {fidelity['top1_agreement_pct']:.2f} % and SQNR {fidelity['sqnr_db']:.1f} dB "
          f"on {fidelity['images']} held-out photos; float top output mean {fidelity['reference_peak_mean']:.3f}; "
          f"per-layer RMSE/step: median {np.median(steps):.2f}, {np.sum(steps > 1)} of {len(steps)} tensors above 1")
    for row in layers[:8]:
        print(f"  {row['rmse_over_scale']:.2f}  {row['op']:<18} {row['tensor'][:110]}")
    for warning in report["warnings"]:
        print(f"WARNING: {warning}", file=sys.stderr)


if __name__ == "__main__":
    main()
