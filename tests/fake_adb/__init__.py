"""Test doubles for the benchmark tests: a stand-in ``adb`` serving a folder as the device, and tiny models."""
