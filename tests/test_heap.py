"""skmic._heap: freed memory stays in the process while an estimator fits (glibc)."""

import ctypes

import numpy as np
import pytest

from skmic import _heap, IICClustering

needs_glibc = pytest.mark.skipif(_heap._LIBC is None or not hasattr(_heap._LIBC, "mallinfo2"),
                                 reason="glibc's allocator (mallopt, and mallinfo2 since glibc 2.33) only")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo():
    """glibc's statistics: ``hblkhd``, bytes in blocks of their own mapping; ``fordblks``, free bytes kept in the heap."""
    mallinfo2 = _heap._LIBC.mallinfo2
    mallinfo2.restype = _Mallinfo2
    return mallinfo2()


MIB64 = 64 * 2**20


@needs_glibc
def test_large_blocks_come_from_the_heap_and_stay_there_until_the_end():
    mapped = _mallinfo().hblkhd
    a = np.empty(MIB64, np.uint8)
    assert _mallinfo().hblkhd >= mapped + MIB64  # outside: a mapping of its own, unmapped when freed
    del a
    with _heap.kept_heap():
        mapped = _mallinfo().hblkhd
        a = np.empty(MIB64, np.uint8)
        assert _mallinfo().hblkhd == mapped  # inside: from the heap
        del a
        assert _mallinfo().fordblks >= MIB64  # freed, kept for the next step's tensors
        with _heap.kept_heap():  # nested: leaving the inner context keeps the outer's settings
            pass
        a = np.empty(MIB64, np.uint8)
        assert _mallinfo().hblkhd == mapped
        del a
        kept = _mallinfo().fordblks
    assert _heap._depth == 0
    assert _mallinfo().fordblks < kept - MIB64 // 2  # given back on leaving (malloc_trim)
    mapped = _mallinfo().hblkhd
    a = np.empty(MIB64, np.uint8)
    assert _mallinfo().hblkhd >= mapped + MIB64  # glibc's defaults again
    del a


def test_tuned_or_foreign_allocators_are_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert _heap._glibc() is None
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")
    assert _heap._glibc() is None
    with _heap.kept_heap(None):  # no C library to tune: a plain context
        assert _heap._depth == 0


@needs_glibc
def test_fit_trains_inside_the_kept_heap_and_gives_the_same_labels(monkeypatch):
    X = np.random.default_rng(0).normal(size=(120, 6)).astype(np.float32)
    depths = []

    def record(_):
        depths.append(_heap._depth)

    params = dict(n_clusters=3, n_init=1, max_epochs=2, random_state=0, callbacks=[record])
    kept = IICClustering(**params).fit(X)
    assert depths and all(d == 1 for d in depths) and _heap._depth == 0
    monkeypatch.setattr("skmic._base.kept_heap", lambda: _heap.kept_heap(None))
    plain = IICClustering(**params).fit(X)
    np.testing.assert_array_equal(kept.labels_, plain.labels_)
    np.testing.assert_array_equal(kept.predict_proba(X), plain.predict_proba(X))
