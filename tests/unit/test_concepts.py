from forgetless.data.concepts import WORLD, concept_stream, generate_concepts


def test_same_seed_same_world_other_seed_other_world():
    a = generate_concepts(12, 4, seed=0)
    assert a == generate_concepts(12, 4, seed=0)
    assert a != generate_concepts(12, 4, seed=1)


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
    relations = [r for kind in WORLD.values() for r in kind.values()]
    assert len(relations) == 30
    for phrasings, answers in relations:
        assert len(phrasings) >= 4 and len(answers) >= 12
        assert len(set(phrasings)) == len(phrasings)
