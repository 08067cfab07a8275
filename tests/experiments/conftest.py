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


def _without(args: list[str], flag: str, n: int) -> list[str]:
    i = args.index(flag)
    return args[:i] + args[i + 1 + n :]


#: TINY for a run that does not grow (growth settings would not apply).
TINY_FIXED = _without(TINY, "--neurons", 1)
#: TINY for a model clgrow does not build (hidden sizes would not apply).
TINY_MODEL = _without(TINY, "--hidden", 2)
