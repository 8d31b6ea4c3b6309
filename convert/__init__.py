"""Keras -> TensorFlow Lite conversion, int8 post-training quantization and verification."""
