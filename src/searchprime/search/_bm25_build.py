"""Worker side of the streaming BM25 build: parse and tokenize one block of records.

A block is either raw JSONL bytes (split on newlines here, so the parent process only
reads and forwards bytes) or parsed parquet rows. The result holds the block's unique
(doc, term, tf) triples against a block-local stem vocabulary, document lengths, and the
documents compressed for the document store (one zstd frame each, so compression runs in the
workers too). Nothing here imports numba or the index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

from searchprime.errors import RecordError
from searchprime.search._docstore import FrameCompressor
from searchprime.search._text import TOKEN_RE, Tokenizer
from searchprime.search.corpus import decode_line, parse_record

try:
    import orjson

    def _dumps(obj: dict[str, Any]) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover
    import json

    def _dumps(obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class Block:
    """One block of input: JSONL bytes starting at ``first_line``, or parquet rows."""

    path: str
    first_line: int
    data: bytes | None = None
    rows: list[tuple[int, Any]] | None = None


@dataclass
class BlockResult:
    """Tokenized block, ready for the parent to merge.

    ``pair_term`` holds the worker's stem ids; ``new_stems`` are the worker's stems with ids
    ``stem_base, stem_base + 1, ...`` first used in this block (blocks of one worker arrive in
    the order it made them, so the parent extends a per-worker id map).
    """

    n_docs: int = 0
    doc_lens: np.ndarray | None = None
    pair_doc: np.ndarray | None = None
    pair_term: np.ndarray | None = None
    pair_tf: np.ndarray | None = None
    pid: int = 0
    stem_base: int = 0
    new_stems: list[str] = field(default_factory=list)
    frames: bytes = b""
    frame_lengths: np.ndarray | None = None
    skipped: list[tuple[str, int | None, str, str]] = field(default_factory=list)
    error: tuple[str, int | None, str, str] | None = None


_TOKENIZER: Tokenizer | None = None
_COMPRESSOR: FrameCompressor | None = None
_SKIP_BAD = False
_WORD_IDS: dict[str, int] = {}  # word -> worker stem id (-1: stop-word or one character)
_STEM_IDS: dict[str, int] = {}  # stem -> worker stem id
_NEW_STEMS: list[str] = []  # stems added since the last block result
# ASCII non-word characters -> space, so str.split() yields exactly the \w+ runs of ASCII text
_ASCII_NONWORD = {c: " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}


def init_worker(stemmer: str | None, stopwords: Any, skip_bad: bool, dictionary: bytes) -> None:
    """Pool initializer: one tokenizer, word/stem vocabulary and compressor per process."""
    global _TOKENIZER, _SKIP_BAD, _COMPRESSOR
    _TOKENIZER = Tokenizer(stemmer, stopwords)
    _COMPRESSOR = FrameCompressor(dictionary)
    _SKIP_BAD = skip_bad
    _WORD_IDS.clear()
    _STEM_IDS.clear()
    _NEW_STEMS.clear()


def _records(block: Block):
    if block.rows is not None:
        for line, obj in block.rows:
            yield line, obj, None
        return
    for i, raw in enumerate(block.data.split(b"\n")):
        if raw.strip():
            yield block.first_line + i, None, raw


def _add_words(words: list[str]) -> None:
    """Give new words a worker stem id (stemming each distinct word once)."""
    words = [w for w in dict.fromkeys(words) if w not in _WORD_IDS]
    for w, s in zip(words, _TOKENIZER.stems(words), strict=True):
        if s is None or len(w) < 2:
            _WORD_IDS[w] = -1
            continue
        sid = _STEM_IDS.get(s)
        if sid is None:
            sid = _STEM_IDS[s] = len(_STEM_IDS)
            _NEW_STEMS.append(s)
        _WORD_IDS[w] = sid


def _split_words(text: str) -> list[str]:
    # same tokens as TOKEN_RE (maximal \w runs; one-character runs are dropped via _WORD_IDS),
    # about twice as fast for ASCII text
    if text.isascii():
        return text.translate(_ASCII_NONWORD).split()
    return TOKEN_RE.findall(text)


def tokenize_block(block: Block) -> BlockResult:
    """Parse, serialize and tokenize one block (runs in a worker process)."""
    res = BlockResult(pid=os.getpid(), stem_base=len(_STEM_IDS) - len(_NEW_STEMS))
    texts: list[str] = []
    lines: list[bytes] = []
    for line, obj, raw in _records(block):
        try:
            if raw is not None:
                obj = decode_line(raw, block.path, line)
            doc = parse_record(obj, block.path, line)
        except RecordError as err:
            info = (err.path, err.line, err.field, err.problem)
            if not _SKIP_BAD:
                res.error = info
                return res
            res.skipped.append(info)
            continue
        texts.append(f"{doc.title}\n{doc.text}".lower())
        lines.append(_dumps(doc.to_json()))
    n = len(texts)
    res.n_docs = n
    res.frames, res.frame_lengths = _COMPRESSOR.frames(lines)
    del lines
    flat: list[str] = []
    raw_lens = np.empty(n, dtype=np.int64)
    for i, text in enumerate(texts):
        words = _split_words(text)
        raw_lens[i] = len(words)
        flat.extend(words)
    sid = np.fromiter(map(_WORD_IDS.get, flat, repeat(-2)), dtype=np.int64, count=len(flat))
    unknown = np.flatnonzero(sid == -2)
    if len(unknown):
        _add_words([flat[i] for i in unknown])
        sid[unknown] = [_WORD_IDS[flat[i]] for i in unknown]
    del flat
    docidx = np.repeat(np.arange(n, dtype=np.int64), raw_lens)
    keep = sid >= 0
    sid = sid[keep]
    docidx = docidx[keep]
    res.doc_lens = np.bincount(docidx, minlength=n).astype(np.int32)
    n_stems = max(len(_STEM_IDS), 1)
    keys, tf = np.unique(docidx * n_stems + sid, return_counts=True)
    res.pair_doc = (keys // n_stems).astype(np.int32)
    res.pair_term = (keys % n_stems).astype(np.int32)
    res.pair_tf = np.minimum(tf, 65535).astype(np.uint16)
    res.new_stems = list(_NEW_STEMS)
    _NEW_STEMS.clear()
    return res


def sample_docs(block: Block) -> list[bytes]:
    """The serialized documents of ``block`` (bad records left out), to train the dictionary."""
    out = []
    for line, obj, raw in _records(block):
        try:
            if raw is not None:
                obj = decode_line(raw, block.path, line)
            out.append(_dumps(parse_record(obj, block.path, line).to_json()))
        except RecordError:
            continue
    return out
