"""Numba kernels for BM25: scattering postings into CSC columns and batched top-k retrieval.

Why numba: bm25s's default numpy backend scores one query at a time with Python-level
overheads (74 q/s at 1M passages); the same CSC walk compiled with numba is >20x faster.
The kernels are ``nogil`` so a batch is split over threads with a plain thread pool (no numba
threading layer, hence safe to call from many threads at once). Each query accumulates
scores only for documents that contain a query term and keeps a size-k heap over those;
MaxScore-style pruning (see :func:`search_block`) skips most of the long posting lists of
frequent terms, which is where exhaustive scoring spends its time at 1M passages. Postings are
(tf, doc id low 16 bits, high bits) arrays scored as ``idf * tf / (tf + norm[doc])``
(:mod:`searchprime.search._bm25_postings`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def scatter_postings(doc, term, tf, t0, t1, base, ptr, out_tf, out_lo, out_hi):
    """Write the (doc, term, tf) triples of terms in ``[t0, t1)`` into CSC buffers that start
    at posting ``base``; ``ptr[t]`` is term ``t``'s next free posting (advanced here)."""
    for i in range(doc.shape[0]):
        t = term[i]
        if t < t0 or t >= t1:
            continue
        d = doc[i]
        p = ptr[t] - base
        out_tf[p] = tf[i]
        out_lo[p] = d & 0xFFFF
        out_hi[p] = d >> 16
        ptr[t] += 1


@njit(nogil=True, inline="always")
def _doc(lo, hi, p):
    return (np.int64(hi[p]) << 16) | np.int64(lo[p])


@njit(nogil=True, inline="always")
def _score(tf, p, w, nd):
    f = np.float32(tf[p])
    return w * f / (f + nd)


@njit(nogil=True, cache=True)
def max_scores(tf, lo, hi, indptr, idf, norm, t0, t1, out):
    """``out[t]``: term ``t``'s largest score, for terms in ``[t0, t1)`` whose postings are
    the buffers ``tf/lo/hi`` starting at ``indptr[t0]``."""
    base = indptr[t0]
    for t in range(t0, t1):
        m = np.float32(0.0)
        w = idf[t]
        for p in range(indptr[t] - base, indptr[t + 1] - base):
            s = _score(tf, p, w, norm[_doc(lo, hi, p)])
            if s > m:
                m = s
        out[t] = m


@njit(nogil=True, inline="always")
def _worse(s1, d1, s2, d2):
    # heap order: lower score is worse; on ties, the larger doc id is worse
    return s1 < s2 or (s1 == s2 and d1 > d2)


@njit(nogil=True, inline="always")
def _sift_down(hs, hd, n, i):
    while True:
        lo = i
        left = 2 * i + 1
        right = left + 1
        if left < n and _worse(hs[left], hd[left], hs[lo], hd[lo]):
            lo = left
        if right < n and _worse(hs[right], hd[right], hs[lo], hd[lo]):
            lo = right
        if lo == i:
            return
        hs[i], hs[lo] = hs[lo], hs[i]
        hd[i], hd[lo] = hd[lo], hd[i]
        i = lo


@njit(nogil=True, cache=True)
def _kth_score(scores, touched, m, k, hs):
    """The k-th largest of ``scores[touched[:m]]`` (a min-heap of size k in ``hs``)."""
    n = 0
    for i in range(m):
        s = scores[touched[i]]
        if n < k:
            c = n
            hs[c] = s
            n += 1
            while c > 0:
                par = (c - 1) // 2
                if hs[c] < hs[par]:
                    hs[c], hs[par] = hs[par], hs[c]
                    c = par
                else:
                    break
        elif s > hs[0]:
            hs[0] = s
            i2 = 0
            while True:
                lo = i2
                left = 2 * i2 + 1
                right = left + 1
                if left < n and hs[left] < hs[lo]:
                    lo = left
                if right < n and hs[right] < hs[lo]:
                    lo = right
                if lo == i2:
                    break
                hs[i2], hs[lo] = hs[lo], hs[i2]
                i2 = lo
    return hs[0]


@njit(nogil=True, cache=True)
def _add_sorted(tf, lo, hi, w, norm, a, b, scores, touched, m):
    """Add a posting list's scores to the (ascending) candidate docs ``touched[:m]`` only."""
    plen = b - a
    if m * 24 < plen:  # few candidates: gallop through the list
        pos = a
        for i in range(m):
            d = touched[i]
            step = 1
            top = pos
            while top < b and _doc(lo, hi, top) < d:
                pos = top + 1
                top = pos + step
                step *= 2
            if top > b:
                top = b
            # binary search in [pos, top)
            low = pos
            while low < top:
                mid = (low + top) // 2
                if _doc(lo, hi, mid) < d:
                    low = mid + 1
                else:
                    top = mid
            pos = low
            if pos >= b:
                break
            if _doc(lo, hi, pos) == d:
                scores[d] += _score(tf, pos, w, norm[d])
    else:  # many candidates: merge the two sorted lists
        i = 0
        for p in range(a, b):
            d = _doc(lo, hi, p)
            while i < m and touched[i] < d:
                i += 1
            if i >= m:
                break
            if touched[i] == d:
                scores[d] += _score(tf, p, w, norm[d])


@njit(nogil=True, cache=True)
def _lookup(tf, lo, hi, w, norm, a, b, d):
    """Score of doc ``d`` in the posting list ``[a, b)`` (0 if absent), by binary search."""
    low = a
    top = b
    while low < top:
        mid = (low + top) // 2
        if _doc(lo, hi, mid) < d:
            low = mid + 1
        else:
            top = mid
    if low < b and _doc(lo, hi, low) == d:
        return _score(tf, low, w, norm[d])
    return np.float32(0.0)


@njit(nogil=True, cache=True)
def _push(hs, hd, n, k, s, d):
    """Offer (s, d) to the size-k min-heap ``hs/hd`` holding ``n`` items; returns new n."""
    if n < k:
        c = n
        hs[c] = s
        hd[c] = d
        n += 1
        while c > 0:
            par = (c - 1) // 2
            if _worse(hs[c], hd[c], hs[par], hd[par]):
                hs[c], hs[par] = hs[par], hs[c]
                hd[c], hd[par] = hd[par], hd[c]
                c = par
            else:
                break
    elif _worse(hs[0], hd[0], s, d):
        hs[0] = s
        hd[0] = d
        _sift_down(hs, hd, n, 0)
    return n


@njit(nogil=True, cache=True)
def search_block(
    tf, lo, hi, indptr, idf, norm, maxscore, q_ptr, q_terms, n_docs, k, out_ids, out_scores
):
    """Top-``k`` documents for queries ``q`` given as ``q_terms[q_ptr[q]:q_ptr[q+1]]``.

    Writes ``out_ids[q]`` (doc positions, -1 padded) and ``out_scores[q]`` in descending
    score order (ties: lower doc id first). Only matching documents are returned.

    Exact top-k with MaxScore-style pruning: terms are scored rarest first into an
    accumulator; once a lower bound of the final k-th score (the k-th partial score, or the
    k-th full score of the best candidates so far, found by binary search in the remaining
    lists) exceeds the sum of the remaining terms' maximum impacts, no unseen document can
    reach the top k, so the remaining (long) posting lists are only probed for the
    candidates that still can.
    """
    scores = np.zeros(n_docs, dtype=np.float32)
    touched = np.empty(n_docs, dtype=np.int32)
    hs = np.empty(k, dtype=np.float32)
    hd = np.empty(k, dtype=np.int64)
    for q in range(q_ptr.shape[0] - 1):
        lo_q = q_ptr[q]
        nt = q_ptr[q + 1] - lo_q
        terms = q_terms[lo_q : lo_q + nt].copy()
        lens = np.empty(nt, dtype=np.int64)
        for i in range(nt):
            lens[i] = indptr[terms[i] + 1] - indptr[terms[i]]
        order = np.argsort(lens, kind="mergesort")
        suffix = np.zeros(nt + 1, dtype=np.float64)
        for i in range(nt - 1, -1, -1):
            suffix[i] = suffix[i + 1] + maxscore[terms[order[i]]]
        m = 0
        pruned = False
        for i in range(nt):
            t = terms[order[i]]
            a = indptr[t]
            b = indptr[t + 1]
            w = idf[t]
            if pruned:
                _add_sorted(tf, lo, hi, w, norm, a, b, scores, touched, m)
                continue
            for p in range(a, b):
                d = _doc(lo, hi, p)
                if scores[d] == 0.0:
                    touched[m] = d
                    m += 1
                scores[d] += _score(tf, p, w, norm[d])
            if i < nt - 1 and m >= k:
                rest = suffix[i + 1]
                theta = _kth_score(scores, touched, m, k, hs)
                nxt = terms[order[i + 1]]
                if rest * (1.0 + 1e-5) >= theta and indptr[nxt + 1] - indptr[nxt] > 4 * m:
                    # the partial k-th score is too low to prune: the full scores of the k
                    # best candidates so far give a tighter (still valid) lower bound
                    n = 0
                    for j in range(m):
                        n = _push(hs, hd, n, k, scores[touched[j]], touched[j])
                    full_min = np.inf
                    for j in range(n):
                        d = hd[j]
                        f = scores[d]
                        for r in range(i + 1, nt):
                            tr = terms[order[r]]
                            f += _lookup(tf, lo, hi, idf[tr], norm, indptr[tr], indptr[tr + 1], d)
                        full_min = min(full_min, f)
                    theta = max(theta, full_min)
                if rest * (1.0 + 1e-5) < theta:
                    # unseen documents cannot reach the top k: keep only the candidates
                    # that still can, sorted by doc id for probing the remaining lists
                    keep = 0
                    bar = theta * (1.0 - 1e-5) - rest
                    for j in range(m):
                        d = touched[j]
                        if scores[d] >= bar:
                            touched[keep] = d
                            keep += 1
                        else:
                            scores[d] = 0.0
                    m = keep
                    touched[:m].sort()
                    pruned = True
        n = 0
        for i in range(m):
            d = touched[i]
            s = scores[d]
            scores[d] = 0.0
            n = _push(hs, hd, n, k, s, d)
        # pop the heap: the worst first, filled from the back
        for r in range(n - 1, -1, -1):
            out_scores[q, r] = hs[0]
            out_ids[q, r] = hd[0]
            last = r
            hs[0] = hs[last]
            hd[0] = hd[last]
            _sift_down(hs, hd, last, 0)
        for r in range(n, k):
            out_ids[q, r] = -1
            out_scores[q, r] = 0.0
