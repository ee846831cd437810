"""Reused CPU buffers for the torch backend's large tensors (the labelled rows' softmax, grad_weight).

Why: glibc hands every freed block above its mmap threshold (32 MiB at most) back to the operating system, so a
fresh [n, V] softmax buffer or [V, H] weight gradient is page-faulted in again, page by page, on every call. On the
2-core benchmark machine that cost about 0.6 ms per MiB: a third of the time of the GEMM writing grad_weight at
the BERT MLM shape (benchmarks/bench_cpu_peers.py). CUDA's caching allocator already reuses memory, so only CPU
tensors are pooled.

Rule: one buffer per (role, dtype) and thread; `take` hands it out only while no tensor other than the pool's
own references its storage (the storage's use count), else a fresh tensor, so a buffer still held anywhere (a
pending backward's softmax, a .grad the caller kept, an accumulated gradient) is never written over. Returned
tensors (`exact=True`, e.g. grad_weight) are the whole buffer, never a view into a larger one. Cost: the pooled
buffers stay allocated between calls (`workspace_bytes`); `release_workspace()` frees them, and
HFPX_LOSS_WORKSPACE=0 (read at import) or `WORKSPACE_ELEMENTS = 0` turns pooling off.
"""
import math
import os
import threading

import torch

# Largest buffer pooled, in elements (1 GiB of fp32); larger ones are allocated per call.
WORKSPACE_ELEMENTS = 0 if os.environ.get("HFPX_LOSS_WORKSPACE", "1").strip() == "0" else 1 << 28

_COUNT = getattr(torch._C, "_storage_Use_Count", None)
_local = threading.local()


def _use_count(t):
    return _COUNT(t.untyped_storage()._cdata)


_UNSHARED = _use_count(torch.empty(1)) if _COUNT is not None else None


def _pool():
    if not hasattr(_local, "buffers"):
        _local.buffers = {}
    return _local.buffers


def take(role, shape, dtype, device, exact=False):
    """An uninitialised tensor of `shape`: the pooled buffer of `role` when it is free (module docstring)."""
    numel = math.prod(shape)
    if device.type != "cpu" or _COUNT is None or not 0 < numel <= WORKSPACE_ELEMENTS:
        return torch.empty(shape, dtype=dtype, device=device)
    pool, key = _pool(), (role, dtype)
    buf = pool.get(key)
    if buf is not None and _use_count(buf) != _UNSHARED:  # still referenced: leave it alone
        return torch.empty(shape, dtype=dtype, device=device)
    if buf is None or buf.numel() < numel or (exact and buf.numel() != numel):
        pool.pop(key, None)  # free the old one first: the peak holds one of them, not both
        buf = pool[key] = torch.empty(numel, dtype=dtype, device=device)
    return buf[:numel].view(shape)


def workspace_bytes():
    """Bytes this thread's pool holds between calls."""
    return sum(b.numel() * b.element_size() for b in _pool().values())


def release_workspace():
    """Frees this thread's pooled buffers (tensors handed out earlier stay valid)."""
    _pool().clear()
