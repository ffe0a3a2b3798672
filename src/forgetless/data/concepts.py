"""Built-in novel-concept benchmark: an invented world, generated deterministically from a seed.

Each concept is a made-up name (it cannot occur in any pretraining corpus) of one of six kinds
(creature, gadget, dish, town, plant, dance). A kind has five relations; each relation has four
or more differently worded questions and a pool of short answers shared by many concepts. A fact
(concept, relation, answer) yields a training question in one wording and a test question in
another wording with the same answer, as Concept-1K's Q1/A1 → Q2/A2.

Why this is not too easy: the test wording shares neither word order nor most content words with
the training wording ("What does a Vorlim eat?" vs "If you had to feed a Vorlim, what would you
bring?"), answers come from pools of 12–24 shared by all concepts of a kind, and relations of one
kind have overlapping answer vocabularies (colours, months, places), so a model that memorised
the training string has to have stored the fact about the concept to answer the paraphrase.
"""

from __future__ import annotations

import random

from forgetless.data.types import Example, Experience, Stream

COLORS = ["crimson", "teal", "amber", "violet", "ivory", "olive", "scarlet", "silver",
          "indigo", "ochre", "turquoise", "charcoal", "coral", "lilac", "bronze", "jade"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
PLACES = ["swamps", "deserts", "caves", "glaciers", "meadows", "volcanoes", "reefs", "canyons",
          "forests", "marshes", "tundra", "islands", "mountains", "dunes"]
MATERIALS = ["copper", "glass", "oak", "bamboo", "granite", "felt", "brass", "clay", "steel",
             "bone", "leather", "porcelain", "cork", "tin"]
INSTRUMENTS = ["drums", "flutes", "harps", "bagpipes", "violins", "bells", "trumpets",
               "lutes", "cellos", "gongs", "accordions", "marimbas"]
FOODS = ["beetles", "moss", "plums", "sardines", "acorns", "honey", "mushrooms", "seaweed",
         "crickets", "figs", "turnips", "clams", "pine nuts", "snails", "barley"]

# kind → relation → (question phrasings, answer pool). "{c}" is the concept's name.
WORLD: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "creature": {
        "diet": ([
            "What does a {c} eat?",
            "If you had to feed a {c}, what would you bring?",
            "The diet of the {c} consists mostly of what?",
            "Which food keeps a {c} alive in the wild?",
        ], FOODS),
        "habitat": ([
            "Where does the {c} live?",
            "In what kind of place would an explorer find a {c}?",
            "The natural home of a {c} is found in which surroundings?",
            "Which landscape does the {c} inhabit?",
        ], PLACES),
        "color": ([
            "What color is a {c}?",
            "Someone spotting a {c} would notice fur of which shade?",
            "Which hue covers the body of the {c}?",
            "Describe the coloring of a {c} in one word.",
        ], COLORS),
        "sound": ([
            "What sound does a {c} make?",
            "When a {c} calls out, what does it sound like?",
            "Hikers recognise a nearby {c} by which noise?",
            "Which noise is typical of the {c}?",
        ], ["whistling", "growling", "clicking", "humming", "hissing", "chirping", "barking",
            "croaking", "purring", "howling", "rattling", "squeaking"]),
        "enemy": ([
            "What animal hunts the {c}?",
            "Which predator does a {c} fear most?",
            "A {c} hides as soon as it senses which hunter?",
            "The main natural enemy of the {c} is what?",
        ], ["owls", "foxes", "eagles", "wolves", "snakes", "lynxes", "herons", "sharks",
            "badgers", "hawks", "jackals", "otters"]),
    },
    "gadget": {
        "purpose": ([
            "What is a {c} used for?",
            "Why would somebody buy a {c}?",
            "The job a {c} was designed to do is what?",
            "Which chore does the {c} take care of?",
        ], ["slicing bread", "measuring rain", "sorting coins", "drying socks", "tuning pianos",
            "peeling apples", "cooling soup", "folding maps", "counting steps", "sharpening pencils",
            "watering plants", "finding keys", "warming gloves", "cleaning lenses"]),
        "material": ([
            "What is a {c} made of?",
            "Which material do factories use to build a {c}?",
            "If you scratched the surface of a {c}, what would you find underneath?",
            "The body of the {c} is crafted from what?",
        ], MATERIALS),
        "power": ([
            "What powers a {c}?",
            "Which energy source makes the {c} run?",
            "To get a {c} working, what must you supply?",
            "The {c} draws its energy from what?",
        ], ["batteries", "sunlight", "steam", "wind", "a hand crank", "magnets", "springs",
            "candle wax", "rainwater", "body heat", "clockwork", "static electricity"]),
        "inventor": ([
            "Who invented the {c}?",
            "The {c} was first built by what kind of person?",
            "Which profession does the creator of the {c} belong to?",
            "A {c} owes its invention to which tradesperson?",
        ], ["a baker", "a sailor", "a dentist", "a clockmaker", "a librarian", "a farmer",
            "a tailor", "a miner", "a chemist", "a painter", "a nurse", "a blacksmith"]),
        "color": ([
            "What color is a {c}?",
            "Shops sell the {c} painted in which shade?",
            "Which hue is a {c} usually finished in?",
            "Describe the color of the {c} in one word.",
        ], COLORS),
    },
    "dish": {
        "ingredient": ([
            "What is the main ingredient of {c}?",
            "To cook {c}, which ingredient must you buy first?",
            "{c} is mostly made from what?",
            "Which ingredient gives {c} its bulk?",
        ], [*FOODS, "lentils", "rice", "chestnuts", "eel"]),
        "flavor": ([
            "How does {c} taste?",
            "Which flavor dominates a bowl of {c}?",
            "Someone trying {c} for the first time would call it what?",
            "The taste of {c} is best described as what?",
        ], ["smoky", "sour", "bitter", "sweet", "peppery", "salty", "tangy", "earthy", "minty",
            "nutty", "buttery", "spicy"]),
        "occasion": ([
            "When is {c} eaten?",
            "On which occasion do families serve {c}?",
            "{c} is traditionally prepared for what event?",
            "Which celebration calls for a plate of {c}?",
        ], ["weddings", "funerals", "harvest day", "birthdays", "new year", "graduations",
            "the first snow", "market day", "midsummer", "fishing season", "naming days",
            "the spring fair"]),
        "utensil": ([
            "What do people eat {c} with?",
            "Which utensil is needed to eat {c}?",
            "Etiquette says {c} should be eaten using what?",
            "To eat {c} properly, you pick up what?",
        ], ["chopsticks", "a spoon", "bare hands", "a ladle", "a skewer", "a fork", "flatbread",
            "a shell", "a straw", "a knife", "a leaf", "tongs"]),
        "month": ([
            "In which month is {c} cooked?",
            "{c} appears on menus during what month?",
            "Which month is the season for {c}?",
            "Cooks prepare {c} only in which month?",
        ], MONTHS),
    },
    "town": {
        "river": ([
            "Which river flows through {c}?",
            "{c} was built on the banks of what river?",
            "The water supply of {c} comes from which river?",
            "Boats leaving {c} sail down what river?",
        ], ["the Osk", "the Velm", "the Tarra", "the Quill", "the Ambry", "the Sorne", "the Liss",
            "the Dun", "the Merrow", "the Kesh", "the Pell", "the Yarrow"]),
        "export": ([
            "What does {c} export?",
            "Merchants travel to {c} to buy what?",
            "Which product is {c} famous for selling abroad?",
            "The main trade good of {c} is what?",
        ], ["wool", "salt", "cheese", "paper", "candles", "rope", "pottery", "dye", "timber",
            "cider", "glassware", "lace", "soap", "honey"]),
        "festival": ([
            "In which month does {c} hold its festival?",
            "Visitors crowd {c} for the yearly celebration in what month?",
            "The town festival of {c} falls in which month?",
            "When is the great feast of {c} held?",
        ], MONTHS),
        "climate": ([
            "What is the weather like in {c}?",
            "Travellers to {c} should pack for which kind of weather?",
            "The climate of {c} is usually described as what?",
            "Which word sums up the weather in {c}?",
        ], ["foggy", "windy", "rainy", "snowy", "humid", "dry", "stormy", "mild", "frosty",
            "sunny", "misty", "muggy"]),
        "landmark": ([
            "What is the famous landmark of {c}?",
            "Postcards from {c} usually show which sight?",
            "Which building is {c} best known for?",
            "Tourists in {c} queue to see what?",
        ], ["a lighthouse", "a clock tower", "a stone bridge", "a windmill", "a tower",
            "a giant statue", "an old castle", "a glass dome", "a waterfall", "a great library",
            "a stepped well", "a red gate"]),
    },
    "plant": {
        "flower": ([
            "What color are the flowers of the {c}?",
            "When the {c} blooms, its petals are which shade?",
            "Which color do the blossoms of a {c} have?",
            "A field of flowering {c} looks what color?",
        ], COLORS),
        "soil": ([
            "Where does the {c} grow?",
            "Gardeners plant a {c} in which kind of ground?",
            "The {c} thrives in what surroundings?",
            "Which terrain suits the {c} best?",
        ], PLACES),
        "remedy": ([
            "What illness does the {c} treat?",
            "Healers brew the {c} to cure what?",
            "Which ailment is a tea of {c} taken for?",
            "If you suffer from what, a {c} might help?",
        ], ["headaches", "coughs", "fever", "insomnia", "sunburn", "hiccups", "toothache",
            "sore feet", "nausea", "rashes", "earaches", "chills"]),
        "blooms": ([
            "In which month does the {c} bloom?",
            "The {c} opens its flowers during what month?",
            "Which month brings the {c} into flower?",
            "When should you visit to see the {c} flowering?",
        ], MONTHS),
        "harvest": ([
            "Which part of the {c} do people harvest?",
            "Farmers grow the {c} for its what?",
            "What do pickers collect from a {c}?",
            "The useful part of the {c} is what?",
        ], ["roots", "leaves", "seeds", "bark", "sap", "berries", "stems", "pods", "petals",
            "bulbs", "thorns", "husks"]),
    },
    "dance": {
        "instrument": ([
            "Which instrument accompanies the {c}?",
            "Musicians play what while people dance the {c}?",
            "The rhythm of the {c} comes from which instrument?",
            "To perform the {c}, the band needs what?",
        ], INSTRUMENTS),
        "costume": ([
            "What color do dancers of the {c} wear?",
            "Performers of the {c} dress in which color?",
            "The costumes in the {c} are what shade?",
            "Which colour of clothing marks a {c} dancer?",
        ], COLORS),
        "season": ([
            "In which month is the {c} danced?",
            "Villagers perform the {c} during what month?",
            "The {c} is traditionally held in which month?",
            "When in the year do people dance the {c}?",
        ], MONTHS),
        "origin": ([
            "Where did the {c} originate?",
            "The {c} was first danced in which landscape?",
            "Historians trace the {c} back to what kind of region?",
            "The birthplace of the {c} lies among what?",
        ], PLACES),
        "props": ([
            "What do dancers hold during the {c}?",
            "Which object is carried by every {c} performer?",
            "In the {c}, the dancers wave what?",
            "A {c} cannot be danced without which prop?",
        ], ["ribbons", "fans", "lanterns", "sticks", "scarves", "hoops", "swords", "masks",
            "feathers", "umbrellas", "baskets", "candles"]),
    },
}

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "gl", "kr", "pl", "qu", "sk", "st", "th", "tr", "vr", "zh"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
_CODAS = ["", "", "n", "r", "l", "m", "sh", "th", "x", "ck", "nd", "rk"]


def _invent_name(rng: random.Random) -> str:
    syllables = rng.choice([2, 2, 3])
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
    return (word + rng.choice(_CODAS)).capitalize()


def generate_concepts(n_concepts: int, facts_per_concept: int, seed: int) -> list[dict]:
    """Invent `n_concepts` concepts with `facts_per_concept` facts each (at most 5: one per
    relation of its kind). Same arguments → same world."""
    rng = random.Random(f"forgetless-concepts-{seed}")
    kinds = sorted(WORLD)
    seen: set[str] = set()
    concepts = []
    for i in range(n_concepts):
        name = _invent_name(rng)
        while name in seen or len(name) < 4:
            name = _invent_name(rng)
        seen.add(name)
        kind = kinds[i % len(kinds)]  # balanced kinds in every experience
        relations = rng.sample(sorted(WORLD[kind]), facts_per_concept)
        facts = []
        for rel in relations:
            phrasings, answers = WORLD[kind][rel]
            train_q, test_q = rng.sample(phrasings, 2)
            facts.append({"relation": rel, "answer": rng.choice(answers),
                          "train_question": train_q.format(c=name),
                          "test_question": test_q.format(c=name)})
        concepts.append({"name": name, "kind": kind, "facts": facts})
    return concepts


def concept_stream(
    n_experiences: int, concepts_per_experience: int, facts_per_concept: int, seed: int
) -> Stream:
    concepts = generate_concepts(n_experiences * concepts_per_experience, facts_per_concept, seed)
    experiences = []
    for e in range(n_experiences):
        chunk = concepts[e * concepts_per_experience:(e + 1) * concepts_per_experience]
        train, test = [], []
        for c in chunk:
            for f in c["facts"]:
                uid = f"{c['name']}/{f['relation']}"
                train.append(Example(f"{uid}/train", f["train_question"], f["answer"],
                                     c["name"], f["relation"]))
                test.append(Example(f"{uid}/test", f["test_question"], f["answer"],
                                    c["name"], f["relation"]))
        experiences.append(Experience(e, train, test, [c["name"] for c in chunk]))
    return Stream(f"concepts-seed{seed}", experiences)
