"""Chunking along the note's structure: speakers, sections, packing, and exact offsets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.chunking import chunk_blocks
from capture.parsing import Block, parse_lines
from retrieval.notes import Participant

PEOPLE = (
    Participant("Karim Benali", "facilitator"),
    Participant("Sophie Martin", "member"),
    Participant("Lucas Moreau", "member"),
)

NOTE = """# Cercle maintenance

## Tour de table
Karim : pour changer le joint sans arrêter la ligne,
on prépare le kit la veille.
Sophie: la caméra rejette trop de barquettes.
- Lucas — moi je note tout dans le cahier.
Astuce : garder un joint d'avance.

## Ce qui a marché
- garder un joint d'avance
- vérifier la pression
"""


def test_speaker_turns_in_three_styles_are_chunks_with_their_full_speaker() -> None:
    note = chunk_blocks(parse_lines(NOTE, markdown=True), PEOPLE)
    turns = [c for c in note.chunks if c.kind == "turn"]
    assert [c.speaker for c in turns] == ["Karim Benali", "Sophie Martin", "Lucas Moreau"]
    assert turns[0].text == "Karim : pour changer le joint sans arrêter la ligne, on prépare le kit la veille."
    assert all(c.section == "Tour de table" for c in turns)


def test_a_label_is_not_a_speaker_and_list_items_are_packed_under_their_heading() -> None:
    note = chunk_blocks(parse_lines(NOTE, markdown=True), PEOPLE)
    label = next(c for c in note.chunks if c.text.startswith("Astuce"))
    assert label.speaker is None
    items = [c for c in note.chunks if c.kind == "list"]
    assert len(items) == 1
    assert items[0].text == "garder un joint d'avance\n- vérifier la pression"
    assert items[0].section == "Ce qui a marché"


def test_speakers_without_participants_are_taken_as_written() -> None:
    note = chunk_blocks(parse_lines("Nadia (qualité) : on double le contrôle.\nNote : rien", markdown=False))
    assert note.chunks[0].speaker == "Nadia"
    assert note.chunks[1].speaker is None


def test_a_first_name_shared_by_two_participants_is_not_guessed() -> None:
    people = (Participant("Karim Benali", "member"), Participant("Karim Haddad", "member"))
    note = chunk_blocks(parse_lines("Karim : je prends.\nKarim Haddad : moi aussi.", markdown=False), people)
    assert [c.speaker for c in note.chunks] == [None, "Karim Haddad"]


def test_a_long_turn_is_split_at_sentences_and_keeps_its_speaker() -> None:
    sentence = "On vérifie le couple de serrage avant de relancer la ligne."
    text = "Karim : " + " ".join([sentence] * 40)
    note = chunk_blocks(parse_lines(text, markdown=False), PEOPLE, max_chars=300)
    assert len(note.chunks) > 3
    assert all(len(c.text) <= 300 for c in note.chunks)
    assert all(c.speaker == "Karim Benali" for c in note.chunks)
    assert all(c.text.endswith(".") for c in note.chunks)


_words = st.text(alphabet="abcdeéèàçœ KSLxyz.:—-'東京", min_size=1, max_size=80).map(str.strip).filter(bool)
_blocks = st.lists(
    st.builds(Block, kind=st.sampled_from(["heading", "item", "paragraph"]), text=_words), min_size=1, max_size=25
)


@settings(max_examples=300, deadline=None)
@given(blocks=_blocks, max_chars=st.integers(min_value=200, max_value=1500))
def test_chunks_cover_every_block_with_exact_offsets(blocks: list[Block], max_chars: int) -> None:
    note = chunk_blocks(blocks, PEOPLE, max_chars=max_chars)
    previous_end = 0
    for chunk in note.chunks:
        assert note.text[chunk.start : chunk.end] == chunk.text
        assert chunk.start >= previous_end
        assert len(chunk.text) <= max(max_chars, 400) or "\n" not in chunk.text
        previous_end = chunk.end
    covered = "".join(note.text[c.start : c.end] for c in note.chunks)
    searchable = [b.text for b in blocks if b.kind != "heading" or all(x.kind == "heading" for x in blocks)]
    for text in searchable:
        assert all(word in covered for word in text.split())
