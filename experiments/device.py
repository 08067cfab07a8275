"""The device a run names, checked to exist on this machine."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(spec: str | torch.device) -> torch.device:
    """The device ``spec`` names, checked to exist on this machine.

    Parameters
    ----------
    spec : str or torch.device
        ``auto`` (CUDA if present, else MPS if present, else CPU), ``cpu``, ``cuda``, ``cuda:i``
        or ``mps``.

    Raises
    ------
    ValueError
        Naming the device when it is malformed or this machine does not have it.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ValueError(f"must be a device name such as 'auto', 'cpu', 'cuda', 'cuda:0' or 'mps' (got {spec!r})")
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps") or (dev.type != "cuda" and dev.index not in (None, 0)):
        raise ValueError(f"{spec!r} is not a device: use auto, cpu, cuda, cuda:i or mps")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"{spec!r}: this machine has no CUDA device")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{spec!r}: this machine has {n} CUDA device(s), cuda:0..cuda:{n - 1}")
    if dev.type == "mps" and not has_mps:
        raise ValueError(f"{spec!r}: this machine has no MPS device")
    return dev
