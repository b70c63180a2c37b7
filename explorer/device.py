"""The one place that turns a device choice ("auto" / "cpu" / "cuda") into a torch.device.

Everything else follows the device of the tensor it is given (`w.device`), so a caller picks the device once,
at the top (the app's sidebar, the command line), and the library never moves tensors on its own.
"""
from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(choice: str = "auto") -> torch.device:
    """"auto" -> cuda when present else cpu; "cpu"; "cuda" (ValueError when no CUDA device is present)."""
    if choice not in DEVICE_CHOICES:
        raise ValueError(f"device={choice!r} is not allowed; choose one of {list(DEVICE_CHOICES)}")
    if choice == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if choice == "cuda" and not cuda_available():
        raise ValueError("device='cuda' was asked for but no CUDA device is present; choose 'auto' or 'cpu'")
    return torch.device(choice)


def device_name(device: torch.device) -> str:
    """A human name for the hardware behind `device` (the GPU model, or the CPU model and core count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import os
    import platform
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores, torch {torch.get_num_threads()} threads)"
