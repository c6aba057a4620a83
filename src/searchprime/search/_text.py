"""BM25 text analysis: the tokenizer shared by index building and querying.

Same analysis as ``bm25s.tokenize``: lower-case, the token pattern ``(?u)\\b\\w\\w+\\b``,
stop-words removed before stemming (bm25s's English list by default, which is Lucene's), then
PyStemmer. Stemming is cached per distinct word, so a corpus stems each word once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")

# Lucene's English stop-words (EnglishAnalyzer), the list bm25s ships as STOPWORDS_EN. Kept
# here rather than imported: importing bm25s pulls in JAX where it is installed.
STOPWORDS_EN = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)

__all__ = ["STOPWORDS_EN", "TOKEN_RE", "Tokenizer", "stopword_set"]


def stopword_set(stopwords: str | Sequence[str] | None) -> frozenset[str]:
    """Resolve ``"en"`` (bm25s's English list), ``None`` or an explicit list."""
    if stopwords is None:
        return frozenset()
    if isinstance(stopwords, str):
        if stopwords in ("en", "english"):
            return STOPWORDS_EN
        raise ValueError(f"unknown stop-word list {stopwords!r} (use 'en', None or a list)")
    return frozenset(w.lower() for w in stopwords)


class Tokenizer:
    """Maps words to stems (``None`` for stop-words), caching each distinct word."""

    def __init__(
        self, stemmer: str | None = "english", stopwords: str | Sequence[str] | None = "en"
    ):
        self.stopwords = stopword_set(stopwords)
        if stemmer:
            import Stemmer

            self._stem_words = Stemmer.Stemmer(stemmer).stemWords
        else:
            self._stem_words = None
        self._cache: dict[str, str | None] = {}

    def stems(self, words: Iterable[str]) -> list[str | None]:
        """Stems of ``words`` (lower-cased already); stop-words map to ``None``."""
        words = list(words)
        cache = self._cache
        missing = [w for w in dict.fromkeys(words) if w not in cache]
        if missing:
            if len(cache) > 2_000_000:  # bound memory for long-running query servers
                cache.clear()
            keep = [w for w in missing if w not in self.stopwords]
            stemmed = self._stem_words(keep) if self._stem_words else keep
            cache.update(dict.fromkeys(missing))
            cache.update(zip(keep, stemmed, strict=True))
        return [cache[w] for w in words]

    def tokens(self, text: str) -> list[str]:
        """Analysed tokens of ``text`` (stop-words dropped)."""
        return [s for s in self.stems(TOKEN_RE.findall(text.lower())) if s is not None]
