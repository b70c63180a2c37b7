"""Fused CPU kernels for the analysis of a layer, where numba is importable (explorer.fused_kernels): one read of
a chunk instead of one torch op per step. Optional by design: `available(t)` says whether they can run on t (a CPU
tensor, numba importable, the kernels compiled); callers keep their torch path for everything else (CUDA tensors,
platforms without numba), and tests/test_fused.py holds the two paths to the same results.
"""
from __future__ import annotations

import functools
from types import ModuleType

import numpy as np
import torch


@functools.lru_cache(maxsize=1)
def _kernels() -> ModuleType | None:
    """explorer.fused_kernels, compiled (or loaded from numba's on-disk cache) on a tiny input, or None where
    numba is missing or cannot compile here."""
    try:
        from explorer import fused_kernels as K
        z = np.zeros((1, 1), np.float32)
        K.reduce_rows(z, z, 1, 0, 1, 1, 1, np.zeros(1, np.float32), np.zeros(1), np.zeros(1, np.float32), z.copy(),
                      np.zeros(1), np.zeros(2, np.int64))
    except Exception:  # noqa: BLE001 - any failure to import or compile means the torch path
        return None
    return K


def available(t: torch.Tensor) -> bool:
    """Whether the fused kernels can run on tensors like t."""
    return t.device.type == "cpu" and _kernels() is not None


def padded_rows(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous numpy view [rows, row stride] of rows t [rows, n] float32 with unit column stride (a view of
    rows padded to whole groups takes the padding along; kernels stop at n), else a contiguous copy."""
    if t.is_contiguous():
        return t.numpy()
    if t.stride(1) == 1 and t.stride(0) >= t.shape[1]:
        try:
            return torch.as_strided(t, (t.shape[0], t.stride(0)), (t.stride(0), 1)).numpy()
        except RuntimeError:  # the padding of the last row is not in t's storage
            pass
    return t.contiguous().numpy()


class RowReduction:
    """explorer.analysis_blocks.LayerReducer's per-chunk sums of the error e = Ŵ - W, by the fused kernel: row and
    column sums of e^2, sum W e, non-zero counts of Ŵ and e, and the heatmap of max |e| over windows of fy rows
    and fx columns. For a layer [out, n_in] whose squares are normal float32 (analysis_blocks.squares_normal)."""

    def __init__(self, out: int, n_in: int, fy: int, fx: int):
        self.kernel = _kernels().reduce_rows
        self.out, self.n_in, self.fy, self.fx = out, n_in, fy, fx
        self.row_e2 = torch.empty(out)
        self.col_e2 = torch.zeros(n_in, dtype=torch.float64)
        self.heat = np.empty((-(-out // fy), -(-n_in // fx)), np.float32)
        self._win, self._dot, self._counts = np.empty(n_in, np.float32), np.zeros(1), np.zeros(2, np.int64)
        self._row, self._col = self.row_e2.numpy(), self.col_e2.numpy()

    def add(self, r0: int, x: torch.Tensor, w_hat: torch.Tensor) -> None:
        """Rows r0 .. of W (x) and Ŵ (w_hat) [rows, n_in] float32 (read only)."""
        self.kernel(padded_rows(x), padded_rows(w_hat), self.n_in, r0, self.out, self.fy, self.fx, self._row,
                    self._col, self._win, self.heat, self._dot, self._counts)

    @property
    def dot(self) -> float:
        return float(self._dot[0])

    @property
    def nonzero_hat(self) -> int:
        return int(self._counts[0])

    @property
    def nonzero_err(self) -> int:
        return int(self._counts[1])
