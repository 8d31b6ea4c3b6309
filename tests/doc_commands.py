"""Which commands of the docs tests/test_docs.py runs, and why it runs none of the others.

A command is one command line of a fenced sh/bash/console block of README.md or docs/*.md as the test reads it:
continuation lines joined, the `$ ` prompt and the `#` comment dropped, blanks collapsed. A Python block is named
by its first line that is not an import. A command or block in neither table fails the test (a new one must be
classified), and so does an entry here that the docs no longer show.

RUN: run as written, in doc order, in one temporary directory holding tests/fixtures (a link) and photo.jpg (the
reader's photo: a copy of tests/fixtures/n02006656_spoonbill.JPEG), with no network; each must exit 0.
NOT_RUN: why not -> the commands and blocks it keeps from running.
"""
RUN = (
    "ghostnet port tests/fixtures/cifar10_ghostnet_100.safetensors -o cifar10.keras",
    "ghostnet convert --keras-model cifar10.keras --calibration tests/fixtures/cifar10_calibration_200.npz "
    "--calibration-steps 200 -o cifar10_int8.tflite",
    "ghostnet eval tests/fixtures/cifar10_test_1000.npz --tflite cifar10_int8.tflite",
    "ghostnet predict tests/fixtures/n02006656_spoonbill.JPEG --tflite cifar10_int8.tflite --top 3",
    "options = vision.ImageClassifierOptions(base_options=mp_tasks.BaseOptions("
    'model_asset_path="cifar10_int8.tflite"),',
    "model = ghostnet_tf.GhostNet(width=1.0)",
    "ghostnet info --width 1.0 --input-size 224",
    "ghostnet info --width 0.5 --input-size 193x257 --json",
    "ghostnet info --family v3 --reparameterized --width 1.0",
)

IMAGENET_FILE = "the int8 file of the ImageNet conversion above, which downloads timm's weights"
NOT_RUN = {
    "runs the whole model comparison: many minutes (--quick too); tests/test_compare.py runs it on a tiny zoo": (
        "make run",
        "make run RUN_ARGS=--quick",
        'make run RUN_ARGS="--models ghostnet_100,ghostnetv2_100,mobilenet_v3_large_075 --threads 2,4"',
        'make run RUN_ARGS="--models ghostnet_100,mobilenet_v3_large_075 --threads 2,4 --rounds 5"',
        'make run RUN_ARGS="--models ghostnet_100,ghostnetv2_100,ghostnetv3_100,mobilenet_v3_large_075"',
        "ghostnet bench compare --target arm --cpu cortex-a76,cortex-a53",
        "ghostnet bench compare --target arm --cpu cortex-a76 --device pixel-3,pixel-3a",
        "ghostnet bench compare --target arm --cpu cortex-a76,cortex-a53 --models ghostnet_050,ghostnet_100,"
        "ghostnet_130,ghostnetv2_100,ghostnetv3_100,repghostnet_050,repghostnet_100,repghostnet_130,mobilenet_v2_100,"
        "mobilenet_v3_small_100,mobilenet_v3_large_075,mobilenet_v3_large_100",
        "ghostnet bench compare --target arm --cpu cortex-a76,cortex-a53 --models repghostnet_100,mobilenet_v3_large_075",
    ),
    "runs the test suite this test is part of (minutes)": (
        "make test",
        "make test PYTEST_ARGS=\"-m 'not slow'\"",
        'make test PYTEST_ARGS="tests/test_metadata.py" PYTEST_WORKERS=0',
        "make test PYTEST_WORKERS=0",
    ),
    "sets the machine up: apt-get installs as root and pip installs from PyPI (.ci/run runs both)": (
        "make arm",
        "make arm clients",
        "make arm && make clients",
    ),
    "downloads timm's ImageNet weights (network; tests/test_weights.py loads them from a local file) and reads "
    "the reader's photos or ImageNet": (
        "ghostnet convert --width 1.0 --weights imagenet --calibration ~/photos/ -o ghostnet_100_int8.tflite",
        "ghostnet convert --width 1.0 --weights imagenet --calibration ~/photos/ -o ghostnet_100_int8.tflite "
        "--report ghostnet_100_int8.json",
        "ghostnet eval ~/imagenet/val --width 1.0 --weights imagenet --tflite ghostnet_100_int8.tflite --limit 2000",
        "ghostnet convert --model ghostnetv2_100 --weights imagenet --calibration ~/photos/ "
        "-o ghostnetv2_100_int8.tflite",
    ),
    "downloads timm's ImageNet weights or reads their downloaded files (network; the parity tests load seeded "
    "weights through the same code)": (
        'model = ghostnet_tf.GhostNet(width=1.0, weights="imagenet")',
        'model = GhostNet(weights="imagenet")',
        "v2 = ghostnet_tf.GhostNetV2(width=1.0)",
        'rep = ghostnet_tf.RepGhostNet(width=1.0, weights="imagenet")',
        "ghostnet port state_dict_73.98.pth -o ghostnet_100.weights.h5",
        "ghostnet port model.safetensors -o ghostnet_100.keras",
        "ghostnet convert --family v2 --width 1.0 --weights ghostnetv2_100.in1k.safetensors --calibration ~/photos/ "
        "-o ghostnetv2_100_int8.tflite",
        "ghostnet convert --family v3 --width 1.0 --weights ghostnetv3_100.in1k.safetensors "
        "-o ghostnetv3_100_int8.tflite",
    ),
    f"reads {IMAGENET_FILE}": (
        "ghostnet predict photo.jpg --tflite ghostnet_100_int8.tflite --top 3",
        "ghostnet bench local --model ghostnet_100_int8.tflite --threads 1,2,4 --json-lines local.jsonl",
    ),
    "a full-size GhostNet conversion: 30-60 s (tests/test_convert.py converts one)": (
        "ghostnet convert --width 1.0 --quantize float16 -o ghostnet_100_fp16.tflite",
        "ghostnet convert --family v3 --width 1.0 --quantize float16 -o ghostnetv3_100_fp16.tflite",
    ),
    "the --keep-float auto search on 1,000 evaluation images: minutes (tests/test_keep_float.py runs the search)": (
        "ghostnet convert --keras-model cifar10.keras --calibration tests/fixtures/cifar10_calibration_200.npz "
        "--calibration-steps 200 --eval-images tests/fixtures/cifar10_test_1000.npz --eval-count 1000 "
        "--keep-float auto -o int8_mixed.tflite",
    ),
    "the reader's own model and images (my_model.keras, cal.npz; `model`, photos/, val/)": (
        "ghostnet convert --keras-model my_model.keras --input-size 192x256 --calibration cal.npz --per-layer "
        "-o my_model_int8.tflite",
        'spec = ConversionSpec(quantize="int8", calibration="photos/", per_layer=True)',
    ),
    "needs a phone with USB debugging (tests/test_bench_adb.py runs the flow against tests/fake_adb)": (
        "adb devices",
        "ghostnet bench adb --model ghostnet_100_int8.tflite --benchmark-binary ./android_aarch64_benchmark_model "
        "--cpu-mask big --json-lines phone.jsonl",
        "ghostnet bench compare --target adb --benchmark-binary ./android_aarch64_benchmark_model",
        "ghostnet bench compare --target adb --benchmark-binary ./android_aarch64_benchmark_model --cpu-mask big",
        "ghostnet bench adb --model ghostnet_1.0_224_int8.tflite --benchmark-binary ./android_aarch64_benchmark_model "
        "--threads 1,2,4 --cpu-mask big --runs 50 --warmup 5 --json-lines results/phone.jsonl",
        "ghostnet bench adb --model ghostnet_1.0_224_int8.tflite --benchmark-binary ./android_aarch64_benchmark_model "
        "--threads 4 --gpu --nnapi --op-profile --json-lines results/phone.jsonl",
    ),
    f"needs `make arm` (root) and {IMAGENET_FILE} (tests/test_bench_arm.py counts small models)": (
        "ghostnet bench arm --model ghostnet_100_int8.tflite --cpu cortex-a76,cortex-a53",
        "ghostnet bench arm --model ghostnet_1.0_224_int8.tflite --cpu cortex-a76,cortex-a53 --json-lines arm.jsonl",
        "ghostnet bench arm --model ghostnet_1.0_224_int8.tflite --cpu cortex-a76 --per-block",
        "ghostnet bench arm --model ghostnet_1.0_224_int8.tflite --device pixel-3",
    ),
    "measures an int8 GhostNet file the reader converted (bench local; taskset: an 8-core big.LITTLE board; "
    "tests/test_bench_local.py runs small models)": (
        "ghostnet bench local --model ghostnet_1.0_224_int8.tflite --threads 1,2,4 --runs 50 --warmup 5 "
        "--json-lines results/local.jsonl",
        "taskset -c 4-7 ghostnet bench local --model ghostnet_1.0_224_int8.tflite --threads 4",
    ),
    "names a run directory of the reader's (runs/<timestamp>; tests/test_bench_results.py renders reports)": (
        "ghostnet bench report runs/<timestamp>/results.jsonl",
    ),
    "reads the committed results of a source checkout (tests/test_estimate.py renders the same estimate tables)": (
        "ghostnet bench report docs/results/arm/results.jsonl --device pixel-3 --out /tmp/estimates",
    ),
    "installs torch and timm from PyPI into a scratch venv, then runs timm (minutes, gigabytes)": (
        "python -m venv /tmp/timm && /tmp/timm/bin/pip install torch==2.14.1 torchvision==0.29.1 timm",
        "/tmp/timm/bin/python tools/make_parity_fixtures.py",
    ),
    "trains on CIFAR-10 or flowers/ data that is not in the repository: minutes to hours (tests/test_train.py "
    "trains a tiny model)": (
        "ghostnet train cifar/train --val cifar/test -o run1.keras --width 1.0 --input-size 64 --epochs 20 "
        "--batch-size 128 --lr 3e-3 --weight-decay 0.05 --label-smoothing 0.1 --seed 0",
        "ghostnet train flowers/ -o flowers.keras --weights ghostnet_100.weights.h5 --input-size 224 --freeze-backbone "
        "--val-split 0.1 --epochs 5",
        "ghostnet train flowers/ -o flowers_v2.keras --model ghostnetv2_100 --weights ghostnetv2_100.safetensors "
        "--input-size 224 --val-split 0.1 --epochs 5",
        "ghostnet train cifar/train --val cifar/test -o cifar10_v3.keras --model ghostnetv3_050 --input-size 64 "
        "--epochs 20 --lr 3e-3",
        "ghostnet train images.npz -o v2_050.keras --family v2 --width 0.5 --input-size 96 --val-split 0.1",
        "ghostnet train cifar/train --val cifar/test -o cifar10_ghostnet_100.keras --weights run1.last.keras "
        "--width 1.0 --input-size 64 --epochs 6 --batch-size 128 --lr 1e-3 --weight-decay 0.05 --label-smoothing 0.1 "
        "--seed 1",
        "python tools/cifar10_reference.py table --data cifar --model cifar10_ghostnet_100.keras --out table.json",
        "ghostnet train cifar/train --val cifar/test -o cifar10_repghost.keras --family rep --width 1.0 --input-size 64 "
        "--epochs 8 --batch-size 128 --lr 3e-3 --weight-decay 0.05 --label-smoothing 0.1 --seed 0",
        "python tools/cifar10_reference.py table --data cifar --model cifar10_repghost.keras "
        '--options "float32,int8,int8 without equalize-ranges,int8 --rewrite none" --out rep.json',
        "python tools/cifar10_reference.py fixtures --data cifar --model cifar10_repghost.keras --weights-only",
        "python tools/cifar10_reference.py fixtures --data cifar --model cifar10_ghostnet_100.keras "
        "--out tests/fixtures",
    ),
    "continues an interrupted training run, or folds the model a training run above wrote: needs its files": (
        "ghostnet train -o cifar10_ghostnet_100.keras --resume",
        'model = keras.models.load_model("cifar10_v3.keras")',
    ),
    "trains on two hosts at once (host1, host2: MultiWorkerMirroredStrategy); tests/test_train.py runs two local "
    "workers": (
        'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\' '
        "ghostnet train /data/cifar/train --val /data/cifar/test -o /shared/run.keras --model ghostnetv2_100 "
        "--input-size 64 --batch-size 256 --strategy multi-worker",
        'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 1}}\' '
        "ghostnet train /data/cifar/train --val /data/cifar/test -o /shared/run.keras --model ghostnetv2_100 "
        "--input-size 64 --batch-size 256 --strategy multi-worker",
    ),
}
