"""The BM25 index and its analyser."""

from __future__ import annotations

from retrieval.lexical import BM25Index, analyse, fold


def test_analyse_folds_accents_drops_stop_words_and_stems() -> None:
    assert fold("Équipe À Łódź") == "equipe a łodz"
    assert analyse("Les joints de la ligne") == analyse("joint ligne")
    assert analyse("changing the seals", "en") == analyse("change seal", "en")


def test_bm25_ranks_by_term_rarity_and_frequency() -> None:
    index = BM25Index()
    index.add("a", analyse("joint joint ligne"))
    index.add("b", analyse("ligne de production"))
    index.add("c", analyse("caméra de vision"))
    ranked = index.search(analyse("joint ligne"), k=3)
    assert [doc for doc, _ in ranked] == ["a", "b"]
    assert ranked[0][1] > ranked[1][1] > 0


def test_removed_and_filtered_documents_are_never_returned() -> None:
    index = BM25Index()
    for i in range(30):
        index.add(f"d{i}", analyse(f"joint numéro {i}"))
    index.remove([f"d{i}" for i in range(0, 30, 2)])
    hits = index.search(analyse("joint"), k=30, allowed=lambda doc: doc != "d1")
    ids = {doc for doc, _ in hits}
    assert ids == {f"d{i}" for i in range(3, 30, 2)}
    assert len(index) == 15


def test_replacing_a_document_updates_document_frequencies() -> None:
    index = BM25Index()
    index.add("a", analyse("joint"))
    index.add("b", analyse("caméra"))
    index.add("a", analyse("caméra"))
    assert index.search(analyse("joint"), k=5) == []
    assert {doc for doc, _ in index.search(analyse("caméra"), k=5)} == {"a", "b"}


def test_compaction_keeps_the_same_results() -> None:
    index = BM25Index()
    for i in range(3000):
        index.add(f"d{i}", analyse(f"joint {i % 7} ligne {i}"))
    before = index.search(analyse("joint 3"), k=5, allowed=lambda doc: int(doc[1:]) >= 2990)
    index.remove([f"d{i}" for i in range(2990)])
    after = index.search(analyse("joint 3"), k=5)
    assert [doc for doc, _ in before] == [doc for doc, _ in after]
