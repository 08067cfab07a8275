"""Tiny settings that keep CLI and grid runs to seconds."""

from __future__ import annotations

TINY = [
    "--benchmark",
    "split-digits",
    "--hidden",
    "8",
    "8",
    "--neurons",
    "4",
    "--epochs",
    "1",
    "--batch-size",
    "64",
    "--quiet",
]
