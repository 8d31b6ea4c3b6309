"""Latency of TFLite models on Android phones (adb + benchmark_model) and on local/ARM CPUs (LiteRT)."""
