"""The CIFAR-10 reference models (GhostNet-1.0x; RepGhostNet-1.0x, docs/conversion.md): test fixtures and the int8
accuracy table (README, "int8 on a trained GhostNet").

    # 1. train (GhostNet-1.0x at 64x64: CIFAR's 32x32 images upscaled by the model's transform; 2-4 min per epoch)
    ghostnet train cifar/train --val cifar/test -o cifar10_ghostnet_100.keras --width 1.0 --input-size 64 \\
        --epochs 20 --batch-size 128 --lr 3e-3 --weight-decay 0.05 --label-smoothing 0.1 --seed 0
    # 2. the committed fixtures (float16 weights, cifar10_<model name>.safetensors; 1,000 test and 200 calibration
    #    images at CIFAR's own 32x32, the same for every model: --weights-only adds a model beside them)
    python tools/cifar10_reference.py fixtures --data cifar --model cifar10_ghostnet_100.keras --out tests/fixtures
    # 3. the table on the 10,000 test images (latency: `ghostnet bench local`'s runner; instructions: `bench arm`)
    python tools/cifar10_reference.py table --data cifar --model cifar10_ghostnet_100.keras --out table.json
    # 4. the JPEGs of the 10,000-image test (the whole test set and the 200 calibration images, as they are)
    python tools/cifar10_reference.py jpegs --data cifar --out tests/fixtures
    # 5. the small trained model of the fast tests (the tests' tiny GhostModule classifier, 32x32, a few minutes)
    python tools/cifar10_reference.py tiny --data cifar --out tests/fixtures

``cifar`` is ../shared/data/cifar10-jpeg.tar.gz unpacked (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg). The
committed image sets were decoded with libjpeg's fast IDCT, up to 5 levels from the accurate decode (PIL's pixels)
this tool now reads; the tests' figures are measured on them, so a new model is added with --weights-only.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

PER_CLASS_EVAL = 100  # 1,000 test images in the fixture
PER_CLASS_CALIBRATION = 20  # 200 training images
NATIVE = (32, 32)  # fixtures keep CIFAR's own pixels; the model's transform resizes them (convert.calibration)
# The rows of the table: label -> convert_and_verify options (built in table(), where TensorFlow is loaded).
OPTIONS = ("float32", "float16", "dynamic", "int8", "int8 --rewrite none", "int8 without equalize-ranges",
           "int8 --keep-float auto", "int16x8")


def option_kwargs(label):
    from convert.mixed import KeepFloat
    from convert.rewrites import REWRITES

    quantize = label.split()[0]
    kwargs = {"quantize": quantize}
    if "--rewrite none" in label:
        kwargs["rewrite"] = []
    if "without equalize-ranges" in label:  # the four instruction rewrites (--rewrite with their names)
        kwargs["rewrite"] = [name for name in REWRITES if name != "equalize-ranges"]
    if "--keep-float auto" in label:
        kwargs["keep_float"] = KeepFloat(auto=True)
    return kwargs


def class_images(folder, per_class, transform):
    """(images uint8 (N, H, W, 3), labels, classes): the first ``per_class`` images of every class folder in
    sorted order (all of them with None), prepared by ``transform``."""
    from ghostnet_tf.preprocessing import class_folders, load_image

    folders = class_folders(folder)
    images, labels = [], []
    for label, (_, paths) in enumerate(folders):
        for path in paths[:per_class]:
            images.append(load_image(path, transform.size, transform).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int64), [name for name, _ in folders]


def native():
    from ghostnet_tf.preprocessing import Transform

    return Transform(NATIVE, crop_pct=1.0)


def load(model_path):
    """The trained model as a ModelSource: its transform prepares every image the converter reads."""
    from convert.source import ModelSource

    return ModelSource.from_file(model_path)


def fixtures(args):
    from safetensors.numpy import save_file

    from ghostnet_tf.preprocessing import class_folders
    from ghostnet_tf.weights import state_dict_from_model

    source = load(args.model)
    model, transform = source.model, source.transform
    classes = [name for name, _ in class_folders(os.path.join(args.data, "test"))]
    state = {k: v.astype(np.float16) for k, v in state_dict_from_model(model).items()}
    save_file(state, os.path.join(args.out, f"cifar10_{model.name}.safetensors"),
              metadata={"transform": json.dumps(transform.to_json()), "classes": json.dumps(classes),
                        "source": os.path.basename(args.model)})
    if args.weights_only:
        print(f"wrote cifar10_{model.name}.safetensors to {args.out}")
        return
    images, labels, classes = class_images(os.path.join(args.data, "test"), PER_CLASS_EVAL, native())
    np.savez_compressed(os.path.join(args.out, "cifar10_test_1000.npz"), images=images, labels=labels,
                        classes=np.asarray(classes))
    images, labels, classes = class_images(os.path.join(args.data, "train"), PER_CLASS_CALIBRATION, native())
    np.savez_compressed(os.path.join(args.out, "cifar10_calibration_200.npz"), images=images)
    print(f"wrote the fixtures to {args.out}")


def jpegs(args):
    """The 10,000 CIFAR-10 test JPEGs and the first 20 training JPEGs per class, as they are (test/<class>/,
    calibration/<class>/): the int8 bound checked on the whole test set, decoded by the project's own loader."""
    import gzip
    import tarfile

    from ghostnet_tf.files import atomic_path
    from ghostnet_tf.preprocessing import class_folders

    out = os.path.join(args.out, "cifar10_jpeg.tar.gz")
    members = [("test", paths) for paths in class_folders(os.path.join(args.data, "test"))]
    members += [("calibration", (name, paths[:PER_CLASS_CALIBRATION]))
                for name, paths in class_folders(os.path.join(args.data, "train"))]
    with atomic_path(out) as tmp, open(tmp, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:  # the same bytes every time
        for split, (name, paths) in members:
            for path in paths:
                info = tar.gettarinfo(path, f"{split}/{name}/{os.path.basename(path)}")
                info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    print(f"wrote {out}: {os.path.getsize(out) / 1e6:.2f} MB")


TINY_EPOCHS = 6


def tiny(args):
    """The tests' tiny GhostModule classifier (tests/tiny.py) trained on the 50,000 CIFAR-10 training images at
    32x32: trained weights for the tests whose claims need them (agreement, the --keep-float target) but
    cannot afford a full GhostNet."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))
    from tiny import tiny_classifier

    from ghostnet_tf.training import train

    out = os.path.join(args.out, "cifar10_tiny.keras")
    report = train(os.path.join(args.data, "train"), out, builder=tiny_classifier, input_size=NATIVE,
                   epochs=args.epochs, batch_size=128, lr=1e-2, seed=0, val=os.path.join(args.data, "test"),
                   show_progress=False)
    for suffix in (".last.keras", ".log.csv", ".report.json"):  # the run's companions stay out of the fixtures
        os.replace(out[:-len(".keras")] + suffix, os.path.join(tempfile.gettempdir(), "cifar10_tiny" + suffix))
    best = max(row["val_accuracy"] for row in report["history"])
    print(f"wrote {out}: {report['epochs_done']} epochs, best test top-1 {100 * best:.2f} %")


def speed(path, arm):
    """(host latency ms: median of 200 invokes of `ghostnet bench local`'s runner, 1 thread; Cortex-A76
    instructions per inference under `ghostnet bench arm`'s emulator, or None without its setup)."""
    from android_bench.local_runner import run_local

    host = run_local(path, threads=1, runs=200, warmup=20)["stats"]["median_us"] / 1000
    if not arm:
        return host, None
    from android_bench.arm.emulator import Emulator
    from android_bench.runner import RunConfig

    return host, Emulator.load().measure(path, RunConfig(runs=1))["instructions"]["per_inference"]


def table(args):
    from convert.api import convert_and_verify
    from convert.inference import predict
    from convert.verify import compare_outputs
    from ghostnet_tf.runtime import make_interpreter

    source = load(args.model)
    model, transform = source.model, source.transform
    test, labels, _ = class_images(os.path.join(args.data, "test"), None, transform)
    calibration, _, _ = class_images(os.path.join(args.data, "train"), args.calibration_count // 10, transform)
    if args.synthetic:  # the converter's built-in synthetic images instead of CIFAR-10 training images
        from convert.calibration import CALIBRATION_SEED, synthetic_images

        calibration = synthetic_images(args.calibration_count, transform.size, CALIBRATION_SEED, transform).images
    reference = np.asarray(model.predict(test.astype(np.float32), batch_size=250, verbose=0))
    rows = [{"option": "Keras float", "top1_pct": 100 * float(np.mean(reference.argmax(1) == labels))}]
    for label in args.options.split(","):
        options = option_kwargs(label)
        calibrated = options["quantize"] in ("int8", "int16x8")
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.tflite")
            report = convert_and_verify(source, path, calibration=calibration if calibrated else None,
                                        calibration_steps=len(calibration), eval_images=test[-32:],
                                        show_progress=False, **options)
            outputs = predict(make_interpreter(model_path=path, num_threads=2), test.astype(np.float32))
            fidelity = compare_outputs(reference, outputs)
            top1 = 100 * float(np.mean(outputs.argmax(1) == labels))
            latency, instructions = speed(path, not args.no_arm)
            kept = report["audit"]["int8"]["kept_float"] if report["audit"]["int8"] else []
            rows.append({"option": label, "top1_pct": top1, "drop_pct": top1 - rows[0]["top1_pct"],
                         "agreement_pct": fidelity["top1_agreement_pct"], "sqnr_db": fidelity["sqnr_db"],
                         "size_mb": os.path.getsize(path) / 1e6, "latency_ms": latency,
                         "a76_minstructions": instructions / 1e6 if instructions else None,
                         "float_ops": [f"{o['op']} {o['layer']}" for o in kept], "keep_float": report["keep_float"],
                         "warnings": report["warnings"]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "keep_float"}), file=sys.stderr)
    result = {"model": args.model, "test_images": len(test), "calibration_images": len(calibration),
              "transform": transform.to_json(), "rows": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("| option | top-1 (%) | drop (points) | agreement (%) | SQNR (dB) | size (MB) | x86 latency (ms) "
          "| A76 (M instructions) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        if "drop_pct" not in row:
            print(f"| {row['option']} | {row['top1_pct']:.2f} | - | - | - | - | - | - |")
            continue
        a76 = "-" if row["a76_minstructions"] is None else f"{row['a76_minstructions']:.2f}"
        print(f"| {row['option']} | {row['top1_pct']:.2f} | {row['drop_pct']:+.2f} | {row['agreement_pct']:.2f} "
              f"| {row['sqnr_db']:.1f} | {row['size_mb']:.2f} | {row['latency_ms']:.3f} | {a76} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fixtures")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", default="tests/fixtures")
    p.add_argument("--weights-only", action="store_true",
                   help="write only the model's weights (another model beside the committed image sets)")
    p.set_defaults(func=fixtures)
    p = sub.add_parser("jpegs")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="tests/fixtures")
    p.set_defaults(func=jpegs)
    p = sub.add_parser("tiny")
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=TINY_EPOCHS)
    p.add_argument("--out", default="tests/fixtures")
    p.set_defaults(func=tiny)
    p = sub.add_parser("table")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--calibration-count", type=int, default=200)
    p.add_argument("--options", default=",".join(OPTIONS), help="comma-separated rows, from: " + ", ".join(OPTIONS))
    p.add_argument("--no-arm", action="store_true", help="no Cortex-A76 instruction counts (no `make arm` setup)")
    p.add_argument("--synthetic", action="store_true", help="calibrate on the built-in synthetic images")
    p.add_argument("--out", default="cifar10_table.json")
    p.set_defaults(func=table)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
