"""ARM in the loop without a phone: .tflite files on the real aarch64 LiteRT under qemu-user, with exact
instruction counts per inference. ``setup.install()`` prepares the emulator once; ``emulator.Emulator`` runs."""
