import sys

from ghostnet_tf.cli import main

sys.exit(main(prog="python -m android_bench", modules=("android_bench.cli",)))
