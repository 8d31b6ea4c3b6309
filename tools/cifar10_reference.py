"""The CIFAR-10 reference model: test fixtures and the int8 accuracy table (README, "int8 on a trained GhostNet").

    # 1. train (1-4 min per epoch on 2 shared cores at 32x32)
    ghostnet train cifar/train --val cifar/test -o cifar10_ghostnet_100.keras --width 1.0 --input-size 32 \\
        --epochs 13 --batch-size 128 --lr 3e-3 --weight-decay 0.05 --label-smoothing 0.1 --seed 0
    # 2. the committed fixtures (float16 weights, 1,000 test images, 200 calibration images)
    python tools/cifar10_reference.py fixtures --data cifar --model cifar10_ghostnet_100.keras --out tests/fixtures
    # 3. the table on the 10,000 test images
    python tools/cifar10_reference.py table --data cifar --model cifar10_ghostnet_100.keras --out table.json

``cifar`` is ../shared/data/cifar10-jpeg.tar.gz unpacked (train/<class>/NNNN.jpg, test/<class>/NNNN.jpg).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

PER_CLASS_EVAL = 100  # 1,000 test images in the fixture
PER_CLASS_CALIBRATION = 20  # 200 training images
PRECISIONS = ("float32", "float16", "dynamic", "int8", "int16x8")


def class_images(folder, per_class, transform, offset=0):
    """(images uint8 (N, H, W, 3), labels, classes): ``per_class`` images of every class folder in sorted order
    (all of them with None), prepared by ``transform``."""
    from ghostnet_tf.preprocessing import find_images, load_image

    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    images, labels = [], []
    for label, name in enumerate(classes):
        paths = find_images(os.path.join(folder, name))
        for path in paths[offset:offset + per_class] if per_class else paths:
            images.append(load_image(path, transform.size, transform).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int64), classes


def load(model_path):
    from ghostnet_tf.training import load_model

    model = load_model(model_path)
    return model, model.ghostnet_transform


def fixtures(args):
    from safetensors.numpy import save_file

    from ghostnet_tf.weights import state_dict_from_model

    model, transform = load(args.model)
    state = {k: np.ascontiguousarray(v, np.float16) for k, v in state_dict_from_model(model).items()}
    save_file(state, os.path.join(args.out, "cifar10_ghostnet_100.safetensors"),
              metadata={"transform": json.dumps(transform.to_json()), "source": os.path.basename(args.model)})
    images, labels, classes = class_images(os.path.join(args.data, "test"), PER_CLASS_EVAL, transform)
    np.savez_compressed(os.path.join(args.out, "cifar10_test_1000.npz"), images=images, labels=labels,
                        classes=np.asarray(classes))
    images, labels, classes = class_images(os.path.join(args.data, "train"), PER_CLASS_CALIBRATION, transform)
    np.savez_compressed(os.path.join(args.out, "cifar10_calibration_200.npz"), images=images)
    print(f"wrote the fixtures to {args.out}")


def latency_ms(path, image, runs=200):
    from ghostnet_tf.runtime import make_interpreter

    interpreter = make_interpreter(model_path=path, num_threads=1)
    detail = interpreter.get_input_details()[0]
    x = np.zeros(detail["shape"], detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    for _ in range(20):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def table(args):
    from convert.api import convert_and_verify
    from convert.inference import predict
    from convert.verify import compare_outputs
    from ghostnet_tf.runtime import make_interpreter

    model, transform = load(args.model)
    test, labels, _ = class_images(os.path.join(args.data, "test"), None, transform)
    calibration, _, _ = class_images(os.path.join(args.data, "train"), args.calibration_count // 10, transform)
    if args.synthetic:  # the converter's built-in synthetic images instead of CIFAR-10 training images
        from convert.calibration import CALIBRATION_SEED, synthetic_images

        calibration = synthetic_images(args.calibration_count, transform.size, CALIBRATION_SEED, transform).images
    reference = np.asarray(model.predict(test.astype(np.float32), batch_size=250, verbose=0))
    rows = [{"precision": "Keras float", "top1_pct": 100 * float(np.mean(reference.argmax(1) == labels))}]
    for precision in args.precisions.split(","):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, f"{precision}.tflite")
            report = convert_and_verify(model, path, quantize=precision,
                                        calibration=calibration if precision in ("int8", "int16x8") else None,
                                        calibration_steps=len(calibration), eval_images=test[-32:],
                                        show_progress=False)
            outputs = predict(make_interpreter(model_path=path, num_threads=2), test.astype(np.float32))
            fidelity = compare_outputs(reference, outputs)
            top1 = 100 * float(np.mean(outputs.argmax(1) == labels))
            rows.append({"precision": precision, "top1_pct": top1, "drop_pct": top1 - rows[0]["top1_pct"],
                         "agreement_pct": fidelity["top1_agreement_pct"], "sqnr_db": fidelity["sqnr_db"],
                         "size_mb": os.path.getsize(path) / 1e6, "latency_ms": latency_ms(path, test[0]),
                         "warnings": report["warnings"]})
        print(json.dumps(rows[-1]), file=sys.stderr)
    result = {"model": args.model, "test_images": len(test), "calibration_images": len(calibration),
              "transform": transform.to_json(), "rows": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("| precision | top-1 (%) | drop (points) | agreement (%) | SQNR (dB) | size (MB) | latency (ms, 1 thread) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if "drop_pct" not in row:
            print(f"| {row['precision']} | {row['top1_pct']:.2f} | - | - | - | - | - |")
        else:
            print(f"| {row['precision']} | {row['top1_pct']:.2f} | {row['drop_pct']:+.2f} | {row['agreement_pct']:.2f} "
                  f"| {row['sqnr_db']:.1f} | {row['size_mb']:.2f} | {row['latency_ms']:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fixtures")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", default="tests/fixtures")
    p.set_defaults(func=fixtures)
    p = sub.add_parser("table")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--calibration-count", type=int, default=200)
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--synthetic", action="store_true", help="calibrate on the built-in synthetic images")
    p.add_argument("--out", default="cifar10_table.json")
    p.set_defaults(func=table)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
