import pytest

from forgetless.core.errors import DataError
from forgetless.data.audit import audit
from forgetless.data.types import Example, Experience, Stream


def ex(uid, q, a, concept, relation="r"):
    return Example(uid, q, a, concept, relation)


def hand_made() -> Stream:
    train0 = [ex("1", "Q about C1?", "x", "C1"), ex("2", "Q about C2?", "x", "C2"),
              ex("3", "Q about C3?", "y", "C3")]
    test0 = [ex("1t", "Other C1?", "x", "C1"), ex("2t", "Other C2?", "x", "C2"),
             ex("3t", "Which is y for C3?", "y", "C3")]  # its answer is in the question
    train1 = [ex("4", "Q about C1?", "y", "C4"),  # the same question text as in experience 0
              ex("5", "Q about C5?", "z", "C5")]
    test1 = [ex("4t", "Other C4?", "y", "C4"), ex("5t", "Q about C5?", "z", "C5")]  # a copy
    return Stream("hand", [Experience(0, train0, test0), Experience(1, train1, test1)])


def test_audit_matches_a_hand_computed_stream():
    r = audit(hand_made())
    # per experience: exp 0 guesses x (2 of 3 training answers) → right on 2 of its 3 tests;
    # exp 1 has y and z once each, the tie goes to y (seen first) → right on 1 of 2. 3/5.
    assert r["relation_majority_experience"] == pytest.approx(3 / 5)
    # over the stream: x, x, y, y, z → x (tie with y, seen first) → right on 2 of 5
    assert r["relation_majority_stream"] == pytest.approx(2 / 5)
    assert r["answer_prior_experience"] == pytest.approx(3 / 5)
    assert r["answer_in_question"] == pytest.approx(1 / 5)
    assert r["test_copies_train"] == pytest.approx(1 / 5)
    assert r["train_repeated_across_experiences"] == pytest.approx(2 / 5)
    assert r["answer_words"] == {"min": 1, "median": 1, "max": 1}
    assert r["key"] == "relation"


def test_the_guesses_are_also_scored_on_the_training_questions():
    """MA and MF are accuracies on training questions: their concept-blind floor is the same
    guess scored there, which can differ from the test questions' figure."""
    train = [ex("1", "Q C1?", "a", "C1"), ex("2", "Q C2?", "a", "C2"), ex("3", "Q C3?", "b", "C3")]
    test = [ex("1t", "Other C1?", "b", "C1"), ex("3t", "Other C3?", "b", "C3")]
    later = [ex("4", "Q C4?", "b", "C4"), ex("5", "Q C5?", "b", "C5")]
    r = audit(Stream("s", [Experience(0, train, test), Experience(1, later, [])]))
    # in experience 0 the guess is "a": right on 2 of its 3 training questions, neither test one;
    # experience 1 guesses "b" for both of its own. Over the stream, a a b b b → "b": 3 of 5.
    assert r["relation_majority_experience"] == 0.0
    assert r["train_relation_majority_experience"] == pytest.approx(4 / 5)
    assert r["relation_majority_stream"] == 1.0
    assert r["train_relation_majority_stream"] == pytest.approx(3 / 5)
    hand = audit(hand_made())  # x x y | y z: x then y by experience (ties: first seen), x overall
    assert hand["train_relation_majority_experience"] == pytest.approx(3 / 5)
    assert hand["train_relation_majority_stream"] == pytest.approx(2 / 5)


def test_without_relations_the_key_is_the_question_with_its_concept_masked():
    train = [ex("1", "What is Foo used for?", "a", "Foo", ""),
             ex("2", "What is Bar used for?", "a", "Bar", "")]
    test = [ex("3", "What is Baz used for?", "a", "Baz", ""), ex("4", "Who made Baz?", "b", "Baz", "")]
    r = audit(Stream("s", [Experience(0, train, test)]))
    assert r["key"] == "question with the concept masked"
    assert r["relation_majority_experience"] == pytest.approx(1 / 2)  # the masked question matches


def test_an_empty_stream_is_a_one_line_error():
    with pytest.raises(DataError, match="nothing to audit"):
        audit(Stream("empty", [Experience(0, [], [])]))


def test_guesses_are_right_exactly_when_the_generate_scorer_would_say_so():
    """Answers are compared as the `generate` scorer compares them (strip, lower case): "Blue "
    matches "blue", but "the blue" does not match "blue" (the scorer would call it wrong)."""
    train = [ex("1", "Q C1?", "Blue ", "C1"), ex("2", "Q C2?", "blue", "C2"),
             ex("3", "Q C3?", "the red", "C3"), ex("4", "Q C4?", "the red", "C4"),
             ex("5", "Q C5?", "the red", "C5")]
    test = [ex("1t", "Other C1?", "blue", "C1"), ex("3t", "Other C3?", "red", "C3")]
    r = audit(Stream("norm", [Experience(0, train, test)]))
    # the majority is "the red" (3 of 5): wrong for "blue", and "red" is not "the red"
    assert r["relation_majority_experience"] == 0.0
    train[3:] = [ex("4", "Q C4?", "BLUE", "C4")]
    r = audit(Stream("norm", [Experience(0, train, test)]))
    assert r["relation_majority_experience"] == pytest.approx(1 / 2)  # "blue" ×3 now


def test_choice_only_guesses_by_hand():
    from forgetless.data.audit import choice_only_guesses

    # distance sums; medoid = the first of the smallest; crowded = most others within 2
    items = [(["5", "6", "9", "20"], 1),  # rank 1; sums 20 18 18 40: 6 ✓; crowded 5 ✗
             (["7", "3", "4", "30"], 0),  # rank 2; sums 30 32 30 76: 7 ✓; crowded 3 ✗
             (["1", "2", "3", "4"], 2)]   # rank 2; sums 6 4 4 6: 2 ✗; crowded 2 ✗
    g = choice_only_guesses(items)
    assert g["chance"] == 0.25
    assert g["best_position"] == pytest.approx(1 / 3)  # each position right once at most
    assert g["best_rank"] == pytest.approx(2 / 3)       # "the third smallest" twice
    assert g["medoid"] == pytest.approx(2 / 3)
    assert g["most_neighbours"] == pytest.approx(0.0)
    words = choice_only_guesses([(["yes", "no"], 0), (["yes", "no"], 0)])
    assert words == {"chance": 0.5, "best_position": 1.0}  # no numeric guesses for words
    with pytest.raises(DataError, match="no items"):
        choice_only_guesses([])


def test_the_shipped_harness_example_is_what_its_script_writes_and_has_no_shortcut():
    import importlib.util
    import json

    from forgetless.data.audit import choice_only_guesses
    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("make", REPO / "scripts/make_harness_example.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    shipped = make.TARGET.read_text()
    assert shipped == make.text()
    rows = [json.loads(line) for line in shipped.splitlines()]
    assert len(rows) == 50
    for r in rows:
        a, b = (int(x) for x in r["question"][len("What is "):-1].split(" + "))
        assert int(r["choices"][r["answer"]]) == a + b
    guesses = choice_only_guesses([(r["choices"], r["answer"]) for r in rows])
    assert max(guesses.values()) <= 0.26  # chance is 0.25; the file before this scored 0.44
