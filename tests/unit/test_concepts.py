from collections import Counter

import pytest

from forgetless.data.audit import audit
from forgetless.data.concepts import WORLD, concept_stream, generate_concepts, relations_in_use


def test_same_seed_same_world_other_seed_other_world():
    a = generate_concepts(3, 8, 4, seed=0)
    assert a == generate_concepts(3, 8, 4, seed=0)
    assert a != generate_concepts(3, 8, 4, seed=1)


def test_test_questions_are_rewordings_with_the_same_answer():
    stream = concept_stream(3, 6, 4, seed=0)
    for exp in stream.experiences:
        assert len(exp.train) == len(exp.test) == 24
        for tr, te in zip(exp.train, exp.test, strict=True):
            assert tr.answer == te.answer and tr.concept == te.concept
            assert tr.question != te.question and tr.concept in te.question


def test_names_are_unique_and_experiences_disjoint():
    stream = concept_stream(5, 8, 3, seed=2)
    names = [c for e in stream.experiences for c in e.concepts]
    assert len(names) == len(set(names)) == 40


def test_world_has_enough_variety():
    assert len(WORLD) == 5
    for phrasings, answers in WORLD.values():
        assert len(phrasings) == len(set(phrasings)) >= 4
        assert len(answers) == len(set(answers)) >= 16


@pytest.mark.parametrize("n, f, expected", [(8, 4, 4), (8, 2, 2), (8, 1, 1), (20, 4, 5),
                                            (10, 4, 5), (4, 2, 2), (8, 5, 5)])
def test_relations_in_use_keep_seven_concepts_per_relation_where_possible(n, f, expected):
    # 8 × 4 = 32 facts: 4 relations × 8 (5 would give 6–7); 10 × 4 = 40: 5 × 8
    assert relations_in_use(n, f) == expected


@pytest.mark.parametrize("n_exp, n, f", [(3, 8, 4), (3, 8, 2), (5, 8, 3), (10, 20, 4),
                                         (4, 12, 5)])
def test_every_relation_in_an_experience_has_distinct_answers(n_exp, n, f):
    stream = concept_stream(n_exp, n, f, seed=3)
    for exp in stream.experiences:
        by_relation = Counter(ex.relation for ex in exp.train)
        assert min(by_relation.values()) >= min(7, n)
        for rel in by_relation:
            answers = [ex.answer for ex in exp.train if ex.relation == rel]
            assert len(set(answers)) == len(answers), (exp.index, rel)


@pytest.mark.parametrize("n_exp, n, f", [(3, 8, 4), (3, 8, 2), (3, 8, 1), (5, 8, 3),
                                         (10, 20, 4)])
def test_a_concept_blind_guess_scores_at_most_15_percent(n_exp, n, f):
    report = audit(concept_stream(n_exp, n, f, seed=0))
    assert report["relation_majority_experience"] <= 0.15
    assert report["relation_majority_stream"] <= 0.15
    assert report["answer_in_question"] == 0 and report["test_copies_train"] == 0
