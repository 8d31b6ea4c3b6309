"""What every GhostNet builder and tool agrees on, without importing Keras: the width rule, the model
names and the channel counts a checkpoint's width is read from."""
STEM_CHANNELS = 16
LAST_CHANNELS = 960  # the final 1x1 conv (blocks.9.0), scaled with width
# Widest GhostNet built: 1.3x is the widest published, and 1e9 would exhaust memory instead of failing.
MAX_WIDTH = 4.0


def check_width(width, where="GhostNet"):
    """The width rule of the project: a finite number in (0, MAX_WIDTH]; ValueError naming ``where`` otherwise."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= MAX_WIDTH:
        raise ValueError(f"{where}: `width` must be a number > 0 and <= {MAX_WIDTH:g} (e.g. 0.5, 1.0, 1.3), "
                         f"got {width!r}")
    return width


def default_name(width, family="ghostnet"):
    """'ghostnet_100' for width 1.0 ('ghostnetv2_100' for family 'ghostnetv2', timm's names): the name of
    models, zoo entries and cached files."""
    return f"{family}_{round(width * 100):03d}"
