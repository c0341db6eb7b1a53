"""Lexical search: a BM25 index over chunk texts, with accent folding, stop words and Snowball stems."""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import snowballstemmer

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

_STOPWORDS_FR = set(
    """a afin ai aie aient ainsi alors au aucun aupres aussi autre aux avaient avais avait avant avec avez aviez
    avions avoir avons ayant c ca car ce ceci cela celle celles celui cependant ces cet cette ceux chaque chez
    ci comme comment d dans de des deja donc dont du elle elles en encore entre es est et etaient etais etait
    ete etes etre eu eux fait faire fois font hors il ils j je jusqu l la le les leur leurs lors lui m ma mais
    me meme memes mes moi mon n ne ni nos notre nous on ont ou par parce pas peu peut plus pour pourquoi puis qu
    quand que quel quelle quelles quels qui quoi s sa sans se sera seront ses si sinon soit son sont sous sur t
    ta te tes toi ton tous tout toute toutes tres tu un une unes uns vers via vos votre vous y""".split()
)
_STOPWORDS_EN = set(
    """a about above after again all also am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here
    hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or
    other our ours out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while who whom why will
    with would you your yours""".split()
)
STOPWORDS = frozenset(_STOPWORDS_FR | _STOPWORDS_EN)


def fold(text: str) -> str:
    """Lower-case and strip accents (``Équipe`` -> ``equipe``)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=4)
def _stemmer(language: str) -> Callable[[str], str]:
    stemmer = snowballstemmer.stemmer("english" if language == "en" else "french")
    lock = threading.Lock()

    @lru_cache(maxsize=200_000)
    def stem(word: str) -> str:
        with lock:  # Snowball stemmers keep state between calls
            return str(stemmer.stemWord(word))

    return stem


def analyse(text: str, language: str = "fr") -> list[str]:
    """Terms of a text: folded words, minus stop words, stemmed for the text's language."""
    stem = _stemmer("en" if language == "en" else "fr")
    return [stem(word) for word in _WORD.findall(fold(text)) if word not in STOPWORDS]


@dataclass
class _Postings:
    docs: list[int] = field(default_factory=list)
    freqs: list[int] = field(default_factory=list)


class BM25Index:
    """In-memory BM25 (Okapi, k1=1.2, b=0.75) over documents identified by string ids.

    Removal marks a slot dead; the slot's postings are dropped on the next ``compact``.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._ids: list[str] = []
        self._slot: dict[str, int] = {}
        self._lengths: list[int] = []
        self._alive: list[bool] = []
        self._doc_terms: list[tuple[str, ...]] = []
        self._postings: dict[str, _Postings] = {}
        self._doc_freq: Counter[str] = Counter()
        self._total_length = 0
        self._arrays: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._slot

    def ids(self) -> set[str]:
        """Ids of the live documents."""
        return set(self._slot)

    def add(self, doc_id: str, terms: Sequence[str]) -> None:
        """Index a document's terms (replacing it if already indexed)."""
        with self._lock:
            if doc_id in self._slot:
                self.remove([doc_id])
            slot = len(self._ids)
            self._ids.append(doc_id)
            self._slot[doc_id] = slot
            self._lengths.append(len(terms))
            self._alive.append(True)
            self._total_length += len(terms)
            counts = Counter(terms)
            self._doc_terms.append(tuple(counts))
            for term, freq in counts.items():
                postings = self._postings.setdefault(term, _Postings())
                postings.docs.append(slot)
                postings.freqs.append(freq)
                self._doc_freq[term] += 1
                self._arrays.pop(term, None)

    def remove(self, doc_ids: Iterable[str]) -> None:
        """Forget documents; unknown ids are ignored."""
        with self._lock:
            for doc_id in doc_ids:
                slot = self._slot.pop(doc_id, None)
                if slot is None:
                    continue
                self._alive[slot] = False
                self._total_length -= self._lengths[slot]
                for term in self._doc_terms[slot]:
                    self._doc_freq[term] -= 1
                self._doc_terms[slot] = ()
            if len(self._ids) > 2 * max(len(self._slot), 1000):
                self._compact()

    def _compact(self) -> None:
        live = [(doc_id, slot) for doc_id, slot in self._slot.items()]
        remap = {old: new for new, (_, old) in enumerate(live)}
        self._ids = [doc_id for doc_id, _ in live]
        self._slot = {doc_id: new for new, (doc_id, _) in enumerate(live)}
        self._lengths = [self._lengths[old] for _, old in live]
        self._alive = [True] * len(live)
        self._doc_terms = [self._doc_terms[old] for _, old in live]
        postings: dict[str, _Postings] = {}
        doc_freq: Counter[str] = Counter()
        for term, old_postings in self._postings.items():
            kept = _Postings()
            for doc, freq in zip(old_postings.docs, old_postings.freqs, strict=True):
                if doc in remap:
                    kept.docs.append(remap[doc])
                    kept.freqs.append(freq)
            if kept.docs:
                postings[term] = kept
                doc_freq[term] = len(kept.docs)
        self._postings = postings
        self._doc_freq = doc_freq
        self._arrays = {}

    def _term_arrays(self, term: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        arrays = self._arrays.get(term)
        if arrays is None:
            postings = self._postings[term]
            arrays = (np.asarray(postings.docs, dtype=np.int64), np.asarray(postings.freqs, dtype=np.float32))
            self._arrays[term] = arrays
        return arrays

    def search(
        self, terms: Sequence[str], k: int, allowed: Callable[[str], bool] | None = None
    ) -> list[tuple[str, float]]:
        """The k best documents for the query terms, among those ``allowed`` accepts (checked before ranking)."""
        with self._lock:
            live_count = len(self._slot)
            if live_count == 0 or k <= 0:
                return []
            average_length = self._total_length / live_count
            lengths = np.asarray(self._lengths, dtype=np.float32)
            scores = np.zeros(len(self._ids), dtype=np.float32)
            touched = np.zeros(len(self._ids), dtype=bool)
            for term, query_freq in Counter(terms).items():
                if term not in self._postings:
                    continue
                docs, freqs = self._term_arrays(term)
                live_docs = self._doc_freq[term]
                idf = math.log(1.0 + (live_count - live_docs + 0.5) / (live_docs + 0.5))
                norm = self.k1 * (1.0 - self.b + self.b * lengths[docs] / max(average_length, 1e-9))
                scores[docs] += query_freq * idf * freqs * (self.k1 + 1.0) / (freqs + norm)
                touched[docs] = True
            touched &= np.asarray(self._alive, dtype=bool)
            candidates = np.flatnonzero(touched)
            if allowed is not None:
                candidates = np.asarray([slot for slot in candidates if allowed(self._ids[slot])], dtype=np.int64)
            if candidates.size == 0:
                return []
            order = candidates[np.argsort(-scores[candidates], kind="stable")][:k]
            return [(self._ids[slot], float(scores[slot])) for slot in order]
