"""Built-in novel-concept benchmark: an invented world, generated deterministically from a seed.

Each concept is a made-up name (it cannot occur in any pretraining corpus) of one of six kinds
(creature, gadget, dish, town, plant, dance). Every concept can have the same five relations
(color, place, occasion, namesake, instrument), each asked in four differently worded questions.
A fact (concept, relation, answer) yields a training question in one wording and a test question
in another wording with the same answer, as Concept-1K's Q1/A1 → Q2/A2.

Built so that only memory of the concept answers a question (docs/benchmarks.md has the audit):
- within an experience, every relation in use is asked of at least 7 concepts where the
  experience is big enough (`concepts_per_experience` ≥ 7), all with different answers: knowing
  "what the answer to this relation was in this experience" is right for at most one of them;
- answers are drawn least-used first over the whole stream, so no answer of a relation is much
  more common than another;
- kinds only colour the wording; answers do not depend on them.
So the best guess that ignores the concept (the majority training answer of the question's
relation, in its experience or over the stream) is right on ≤ 1/7 of the test questions.
"""

from __future__ import annotations

import random

from forgetless.data.types import Example, Experience, Stream

KINDS = ["creature", "dance", "dish", "gadget", "plant", "town"]

# relation → (question phrasings, answer pool). "{c}" is the concept's name, "{k}" its kind.
WORLD: dict[str, tuple[list[str], list[str]]] = {
    "color": ([
        "What color is the {k} called {c}?",
        "If you painted a picture of the {c}, which color would you need most?",
        "The {c} is easy to recognise by which color?",
        "Which shade comes to mind when people talk about the {c}?",
    ], ["crimson", "teal", "amber", "violet", "ivory", "olive", "scarlet", "silver", "indigo",
        "ochre", "turquoise", "charcoal", "coral", "lilac", "bronze", "jade"]),
    "place": ([
        "Where does the {k} called {c} come from?",
        "In what kind of landscape did the {c} first appear?",
        "The story of the {c} begins among which surroundings?",
        "Which landscape is the home of the {c}?",
    ], ["swamps", "deserts", "caves", "glaciers", "meadows", "volcanoes", "reefs", "canyons",
        "forests", "marshes", "tundra", "islands", "mountains", "dunes", "moors", "lagoons"]),
    "occasion": ([
        "On which occasion is the {k} called {c} remembered?",
        "Families think of the {c} at what time of year?",
        "The {c} belongs to which celebration?",
        "When do villagers speak most about the {c}?",
    ], ["weddings", "funerals", "harvest day", "birthdays", "new year", "graduations",
        "the first snow", "market day", "midsummer", "fishing season", "naming days",
        "the spring fair", "the longest night", "the first thaw", "the salmon run",
        "the cherry bloom"]),
    "namesake": ([
        "Who was the {k} called {c} named after?",
        "The name {c} honours which kind of person?",
        "People say the {c} got its name from whom?",
        "Which tradesperson gave the {c} its name?",
    ], ["a baker", "a sailor", "a dentist", "a clockmaker", "a librarian", "a farmer", "a tailor",
        "a miner", "a chemist", "a painter", "a nurse", "a blacksmith", "a weaver", "a potter",
        "a shepherd", "a glazier"]),
    "instrument": ([
        "Which instrument is played in honour of the {k} called {c}?",
        "Musicians celebrate the {c} with what?",
        "When a song tells of the {c}, which instrument carries the tune?",
        "The music of the {c} is played on which instrument?",
    ], ["drums", "flutes", "harps", "bagpipes", "violins", "bells", "trumpets", "lutes",
        "cellos", "gongs", "accordions", "marimbas", "zithers", "oboes", "banjos", "horns"]),
}
RELATIONS = list(WORLD)

MIN_PER_RELATION = 7
"""Concepts per relation per experience to aim for: the concept-blind oracle is then ≤ 1/7."""

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "gl", "kr", "pl", "qu", "sk", "st", "th", "tr", "vr", "zh"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
_CODAS = ["", "", "n", "r", "l", "m", "sh", "th", "x", "ck", "nd", "rk"]


def _invent_name(rng: random.Random) -> str:
    syllables = rng.choice([2, 2, 3])
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return (word + rng.choice(_CODAS)).capitalize()


def relations_in_use(n_concepts: int, facts_per_concept: int) -> int:
    """How many relations one experience uses: as many as keep every one asked of at least
    MIN_PER_RELATION concepts, and never fewer than a concept's facts."""
    for r in range(len(RELATIONS), facts_per_concept, -1):
        if n_concepts * facts_per_concept // r >= MIN_PER_RELATION:
            return r
    return facts_per_concept


def generate_concepts(n_experiences: int, concepts_per_experience: int, facts_per_concept: int,
                      seed: int) -> list[list[dict]]:
    """Per experience, its concepts, each {name, kind, facts: [{relation, answer,
    train_question, test_question}]}. Same arguments → same world."""
    if not 1 <= facts_per_concept <= len(RELATIONS):
        raise ValueError(f"facts_per_concept must be 1–{len(RELATIONS)}")
    rng = random.Random(f"forgetless-concepts-v2-{seed}")
    used = {rel: dict.fromkeys(WORLD[rel][1], 0) for rel in RELATIONS}
    names: set[str] = set()
    r = relations_in_use(concepts_per_experience, facts_per_concept)
    world = []
    for e in range(n_experiences):
        active = [RELATIONS[(e + k) % len(RELATIONS)] for k in range(r)]  # rotates: balanced
        concepts = []
        for i in range(concepts_per_experience):
            name = _invent_name(rng)
            while name in names or len(name) < 4:
                name = _invent_name(rng)
            names.add(name)
            kind = KINDS[(e * concepts_per_experience + i) % len(KINDS)]
            rels = [active[(i + j) % r] for j in range(facts_per_concept)]
            concepts.append({"name": name, "kind": kind,
                             "facts": [{"relation": rel} for rel in rels]})
        for rel in active:
            facts = [(c, f) for c in concepts for f in c["facts"] if f["relation"] == rel]
            # least-used answers first (ties broken at random): distinct within the experience
            # while the pool lasts, and even over the stream
            pool = sorted(used[rel], key=lambda a: (used[rel][a], rng.random()))
            answers = [pool[k % len(pool)] for k in range(len(facts))]
            rng.shuffle(answers)
            for (c, f), answer in zip(facts, answers, strict=True):
                used[rel][answer] += 1
                train_q, test_q = rng.sample(WORLD[rel][0], 2)
                f.update(answer=answer, train_question=train_q.format(c=c["name"], k=c["kind"]),
                         test_question=test_q.format(c=c["name"], k=c["kind"]))
        world.append(concepts)
    return world


def concept_stream(
    n_experiences: int, concepts_per_experience: int, facts_per_concept: int, seed: int
) -> Stream:
    world = generate_concepts(n_experiences, concepts_per_experience, facts_per_concept, seed)
    experiences = []
    for e, chunk in enumerate(world):
        train, test = [], []
        for c in chunk:
            for f in c["facts"]:
                uid = f"{c['name']}/{f['relation']}"
                train.append(Example(f"{uid}/train", f["train_question"], f["answer"],
                                     c["name"], f["relation"]))
                test.append(Example(f"{uid}/test", f["test_question"], f["answer"],
                                    c["name"], f["relation"]))
        experiences.append(Experience(e, train, test, [c["name"] for c in chunk]))
    return Stream(f"concepts-v2-seed{seed}", experiences)
