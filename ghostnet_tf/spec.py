"""What every GhostNet builder and tool agrees on, without importing Keras: the width rule, the model
names and the channel counts a checkpoint's width is read from."""
STEM_CHANNELS = 16
LAST_CHANNELS = 960  # the final 1x1 conv (blocks.9.0), scaled with width
# Widest GhostNet built: 1.3x is the widest published, and 1e9 would exhaust memory instead of failing.
MAX_WIDTH = 4.0
# Bounds of what a phone model can be, so that a typo fails at once instead of exhausting memory minutes later:
# 2048 pixels a side (phone vision models take 96-1024), 30,000 classes (ImageNet-21k has 21,843).
MAX_INPUT_SIDE = 2048
MAX_CLASSES = 30_000
# The smallest crop_pct: the image is first scaled to size / crop_pct, so 1e-6 would mean a million-pixel side
# per pixel of the crop. Evaluation recipes use 0.8-1.0.
MIN_CROP_PCT = 0.1


def check_width(width, where="GhostNet"):
    """The width rule of the project: a finite number in (0, MAX_WIDTH]; ValueError naming ``where`` otherwise."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= MAX_WIDTH:
        raise ValueError(f"{where}: `width` must be a number > 0 and <= {MAX_WIDTH:g} (e.g. 0.5, 1.0, 1.3), "
                         f"got {width!r}")
    return width


def check_input_size(size, where="input_size"):
    """(H, W) of positive integers of at most MAX_INPUT_SIDE; ValueError naming ``where`` otherwise."""
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_INPUT_SIDE for s in size)):
        raise ValueError(f"{where}: expected (height, width) of integers from 1 to {MAX_INPUT_SIDE}, got {size!r}")
    return tuple(size)


def check_classes(classes, where="classes"):
    """A class count from 1 to MAX_CLASSES; ValueError naming ``where`` otherwise."""
    if isinstance(classes, bool) or not isinstance(classes, int) or not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"{where}: expected a number of classes from 1 to {MAX_CLASSES:,}, got {classes!r}")
    return classes


def check_crop_pct(crop_pct, where="crop_pct"):
    """A crop fraction in [MIN_CROP_PCT, 1]; ValueError naming ``where`` otherwise."""
    if not MIN_CROP_PCT <= float(crop_pct) <= 1.0:  # NaN fails too
        raise ValueError(f"{where}: crop_pct must be in [{MIN_CROP_PCT:g}, 1], got {crop_pct!r}")
    return crop_pct


def default_name(width, family="ghostnet"):
    """'ghostnet_100' for width 1.0 ('ghostnetv2_100' for family 'ghostnetv2', timm's names): the name of
    models, zoo entries and cached files."""
    return f"{family}_{round(width * 100):03d}"
