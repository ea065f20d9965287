"""Device selection: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked against what exists."""

from __future__ import annotations

from contextlib import contextmanager

import torch


def available_devices() -> list[str]:
    """The devices this machine has, CPU first: ``["cpu", "cuda:0", ...]``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def device_names() -> dict[str, str]:
    """Each available device with a human name (the GPU model for CUDA devices)."""
    names = {"cpu": "CPU"}
    for device in available_devices()[1:]:
        if device.startswith("cuda"):
            names[device] = torch.cuda.get_device_name(int(device.split(":")[1]))
        else:
            names[device] = "Apple GPU (MPS)"
    return names


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``device``; ``auto`` picks the first GPU, else the CPU.

    Raises:
      ValueError: naming the devices this machine has, when ``device`` is not one of them.
    """
    available = available_devices()
    spec = str(device)
    if spec == "auto":
        return torch.device(available[1] if len(available) > 1 else "cpu")
    if spec == "cuda" and any(d.startswith("cuda") for d in available):
        spec = "cuda:0"
    if spec not in available:
        raise ValueError(f"device must be 'auto' or one of {available} on this machine, got {spec!r}")
    return torch.device(spec)


@contextmanager
def cpu_threads(count: int | None):
    """Run a block with ``count`` intra-op CPU threads in torch (None: leave the setting);
    the previous count is restored afterwards."""
    if count is None:
        yield
        return
    from hpolab.validation import check_count

    previous = torch.get_num_threads()
    torch.set_num_threads(check_count("threads", count, minimum=1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
