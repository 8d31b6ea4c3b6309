import sys

from ghostnet_tf.cli import main

sys.exit(main(prog="python -m convert", modules=("convert.cli",)))
