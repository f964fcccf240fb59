"""Freed memory stays in the process while an estimator fits (glibc only).

glibc's ``malloc`` serves every block larger than 32 MiB (and, until its
threshold adapts, every block larger than 128 KiB) with a fresh ``mmap`` and
returns it with ``munmap`` when freed; it also gives the top of the heap back
to the system once more than 128 KiB of it is free. A training step
allocates and frees the same large activations again and again, so the
kernel maps and zeroes those pages anew every step: on a 2-core machine an
IIC step over eight restarts of 28 x 28 images spent a third of its CPU time
in page faults (13.5 million faults in 62 steps). Inside :func:`kept_heap`
large blocks come from the heap and freed ones are reused, never returned;
on leaving, glibc's default settings are restored and the free memory is
given back with ``malloc_trim``.

A user who tunes the allocator already (``MALLOC_*`` environment variables,
or another allocator preloaded, such as jemalloc or tcmalloc) is left
alone, as is every platform without glibc.
"""

import contextlib
import ctypes
import os
import threading

__all__ = ["kept_heap"]

#: mallopt's parameter numbers (malloc.h) and glibc's defaults for them
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536

#: the free memory at the heap's top that glibc keeps inside kept_heap (the largest int mallopt takes)
KEPT_TRIM_THRESHOLD = 2**31 - 1

_TUNING_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
                     "GLIBC_TUNABLES", "LD_PRELOAD")

_lock = threading.Lock()
_depth = 0


def _glibc():
    """The C library when it is glibc and the allocator is left to us, else None."""
    if any(os.environ.get(name) for name in _TUNING_VARIABLES):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: an AttributeError elsewhere
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError, TypeError):  # no C library by that name (Windows), or not glibc
        return None
    return libc


_LIBC = _glibc()


@contextlib.contextmanager
def kept_heap(libc=_LIBC):
    """Within this context, large blocks come from the heap and freed memory is reused (glibc).

    Nested and concurrent uses (threads) are counted: the settings change on
    the first entry and are restored on the last exit.
    """
    global _depth
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, KEPT_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
