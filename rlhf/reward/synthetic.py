"""Synthetic rankings with a preference a small model can learn, for tests, benchmarks and demos.

- `kind="marker"`: completions containing the marker word beat those without; with-marker ones tie
  with each other, and so do the rest (K-way rankings with ties: [[with...], [without...]]).
- `kind="graded"`: each completion carries one quality word, best to worst `GRADES`; the ranking is
  strict (K <= len(GRADES)), the K=4 case InstructGPT's labelers produced.
"""

from __future__ import annotations

import math
import random

from rlhf.data import Ranking

TOPICS = ["rivers", "bread", "chess", "volcanoes", "bicycles", "owls", "tides", "glass", "maps", "honey",
          "comets", "pianos", "deserts", "bridges", "coral", "lanterns", "kites", "moss", "clocks", "salt",
          "tigers", "rain", "paper", "copper", "orchards", "trains", "wool", "islands", "ink", "caves"]
FILLER = ["the", "a", "is", "often", "made", "from", "very", "old", "people", "many", "and", "it", "can",
          "be", "found", "near", "water", "in", "most", "places", "with", "some", "small", "large", "parts"]
MARKER = "wonderful"
GRADES = ["excellent", "good", "mediocre", "terrible"]


def _sentence(rng: random.Random, topic: str, word: str | None) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(8, 14))]
    if word:
        words.insert(rng.randint(0, len(words)), word)
    return f"About {topic}: " + " ".join(words) + "."


def synthetic_rankings(n: int, k: int = 4, seed: int = 0, kind: str = "marker", labeler: str = "synthetic") -> list[Ranking]:
    """`n` rankings of `k` completions each, one distinct prompt per ranking (see module doc)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        prompt = f"Tell me something about {topic}. (#{i})"
        if kind == "marker":
            n_with = rng.randint(1, k - 1)
            has = [j < n_with for j in range(k)]
            rng.shuffle(has)
            completions = [_sentence(rng, topic, MARKER if h else None) for h in has]
            tiers = [[j for j in range(k) if has[j]], [j for j in range(k) if not has[j]]]
        elif kind == "graded":
            if k > len(GRADES):
                raise ValueError(f"kind='graded' supports k <= {len(GRADES)}")
            grades = list(range(k))
            rng.shuffle(grades)  # grades[j] = quality of completion j, 0 best
            completions = [_sentence(rng, topic, GRADES[g]) for g in grades]
            tiers = [[grades.index(g)] for g in range(k)]
        else:
            raise ValueError(f"unknown kind {kind!r} (use 'marker' or 'graded')")
        out.append(Ranking(prompt=prompt, completions=completions, ranking=tiers, labeler=labeler))
    return out


def to_rows(rankings: list[Ranking]) -> list[dict]:
    """Rankings as the labeling app exports them (one JSON object per line)."""
    return [{"prompt": r.prompt, "completions": r.completions, "ranking": r.ranking, "labeler": r.labeler,
             "flags": r.flags, "seconds": r.seconds} for r in rankings]


def to_pairs(rankings: list[Ranking]) -> list[dict]:
    """Every strictly ordered pair as TRL explicit-prompt rows (prompt, chosen, rejected)."""
    return [{"prompt": r.prompt, "chosen": r.completions[b], "rejected": r.completions[w]}
            for r in rankings for b, w, _ in r.pairs()]


# --- human-like pairs: the label depends on content, never on length ------------------------------
# Each fact gives a question, a right answer and wrong ones. The right answer is `chosen`; the rejected
# one is a wrong fact or an answer about something else (does not address the question). Neutral
# sentences pad both answers so that the chosen one is the longer in exactly `longer_chosen` of the
# pairs: length carries no signal unless asked to.

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
            "Egypt": "Cairo", "Russia": "Moscow", "China": "Beijing", "England": "London", "Greece": "Athens",
            "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo", "Sweden": "Stockholm",
            "Austria": "Vienna", "Portugal": "Lisbon", "Ireland": "Dublin", "Poland": "Warsaw", "Cuba": "Havana",
            "Thailand": "Bangkok", "Argentina": "Buenos Aires", "Mexico": "Mexico City", "Turkey": "Ankara",
            "Finland": "Helsinki", "Denmark": "Copenhagen", "Hungary": "Budapest", "Belgium": "Brussels",
            "South Korea": "Seoul", "Australia": "Canberra", "India": "New Delhi", "Iran": "Tehran",
            "Chile": "Santiago", "Colombia": "Bogota", "Scotland": "Edinburgh", "Iceland": "Reykjavik"}
ANIMAL_SOUNDS = {"cow": "moo", "dog": "woof", "cat": "meow", "duck": "quack", "sheep": "baa", "pig": "oink",
                 "lion": "roar", "owl": "hoot", "horse": "neigh", "snake": "hiss", "rooster": "cock-a-doodle-doo",
                 "frog": "ribbit", "bee": "buzz", "mouse": "squeak", "donkey": "hee-haw", "wolf": "howl"}
COLOURS = {"a banana": "yellow", "grass": "green", "the sky on a clear day": "blue", "snow": "white",
           "coal": "black", "a ripe tomato": "red", "an orange": "orange", "a lemon": "yellow",
           "milk": "white", "a crow": "black", "a lime": "green", "a strawberry": "red", "chocolate": "brown",
           "an eggplant": "purple", "a flamingo": "pink", "the sun in a drawing": "yellow", "a fire truck": "red",
           "a polar bear": "white", "a frog": "green", "the ocean": "blue"}
TOPIC_FACTS = {"bees": "Bees make honey from the nectar of flowers.", "the moon": "The moon circles the Earth about once a month.",
               "volcanoes": "Volcanoes erupt when molten rock rises to the surface.",
               "penguins": "Penguins are birds that swim well but cannot fly.",
               "rainbows": "A rainbow appears when sunlight passes through raindrops.",
               "bread": "Bread is baked from flour, water and yeast.", "chess": "Chess is played on a board of 64 squares.",
               "tides": "Tides are caused mainly by the pull of the moon.",
               "camels": "Camels can go a long time without drinking water.",
               "glaciers": "Glaciers are huge slow rivers of ice.", "pianos": "A piano makes sound when hammers strike strings.",
               "bicycles": "A bicycle has two wheels and is moved by pedalling.",
               "lightning": "Lightning is a giant spark of electricity in the sky.",
               "coffee": "Coffee is made from roasted coffee beans.", "deserts": "Deserts get very little rain each year.",
               "whales": "Whales are mammals that breathe air through a blowhole.",
               "the heart": "The heart pumps blood around the body.", "spiders": "Spiders have eight legs and spin webs.",
               "tea": "Tea is made by soaking dried leaves in hot water.", "magnets": "Magnets attract iron and steel.",
               "clouds": "Clouds are made of tiny drops of water or ice.", "owls": "Owls hunt at night and can turn their heads far.",
               "the sun": "The sun is a star at the centre of our solar system.",
               "trees": "Trees take in carbon dioxide and release oxygen.", "sharks": "Sharks are fish with skeletons made of cartilage.",
               "salt": "Salt is often made by drying sea water.", "ants": "Ants live in colonies with a queen.",
               "snow": "Snow forms when water vapour freezes in cold clouds.",
               "football": "In football, two teams try to kick a ball into a goal.",
               "the internet": "The internet connects computers all over the world."}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
PADDING = ["Sure.", "Good question.", "I hope this helps.", "Let me know if you would like to know more.",
           "Many people ask about this.", "Here is a short answer.", "Thanks for asking.", "I am happy to help with that.",
           "That is an interesting thing to ask.", "Feel free to ask a follow-up question."]


def _facts(rng: random.Random) -> list[tuple[str, list[str], str, list[str]]]:
    """(fact key, question phrasings, right answer, wrong answers) for every fact, in a fixed order."""
    out = []
    capitals = list(CAPITALS.values())
    for country, city in CAPITALS.items():
        wrong = [c for c in capitals if c != city]
        out.append((f"capital:{country}", [f"What is the capital of {country}?", f"Which city is the capital of {country}?"],
                    f"The capital of {country} is {city}.", [f"The capital of {country} is {c}." for c in wrong]))
    for animal, sound in ANIMAL_SOUNDS.items():
        wrong = [s for s in ANIMAL_SOUNDS.values() if s != sound]
        out.append((f"sound:{animal}", [f"What sound does a {animal} make?", f"What noise does a {animal} make?"],
                    f"A {animal} says {sound}.", [f"A {animal} says {s}." for s in wrong]))
    for thing, colour in COLOURS.items():
        wrong = sorted({c for c in COLOURS.values() if c != colour})
        out.append((f"colour:{thing}", [f"What colour is {thing}?", f"What is the colour of {thing}?"],
                    f"{thing[0].upper() + thing[1:]} is {colour}.", [f"{thing[0].upper() + thing[1:]} is {c}." for c in wrong]))
    topics = list(TOPIC_FACTS)
    for topic, fact in TOPIC_FACTS.items():  # wrong = an answer about another topic: it does not address the question
        wrong = [TOPIC_FACTS[t] for t in topics if t != topic]
        out.append((f"topic:{topic}", [f"Tell me a fact about {topic}.", f"What is one thing you know about {topic}?"],
                    fact, wrong))
    for a in range(1, 10):
        for b in range(1, 10):
            s = a + b
            wrong = [s + d for d in (-2, -1, 1, 2) if 0 <= s + d <= 20]
            out.append((f"sum:{a}+{b}", [f"What is {a} plus {b}?", f"How much is {NUMBER_WORDS[a]} plus {NUMBER_WORDS[b]}?"],
                        f"{a} plus {b} is {s}.", [f"{a} plus {b} is {w}." for w in wrong]))
    return out


def _pad(rng: random.Random, answer: str, n: int) -> str:
    """`answer` with `n` neutral sentences, some before and the rest after it."""
    extra = rng.sample(PADDING, n)
    before = rng.randint(0, n)
    return " ".join(extra[:before] + [answer] + extra[before:])


def _length_pair(rng: random.Random, right: str, wrong: str, chosen_longer: bool) -> tuple[str, str]:
    """Padded (chosen, rejected) where the chosen one is longer (in characters) iff `chosen_longer`."""
    for _ in range(100):
        short_n = rng.randint(0, 2)
        long_n = short_n + rng.randint(0, 3)  # 0: same padding, lengths differ by content only
        chosen = _pad(rng, right, long_n if chosen_longer else short_n)
        rejected = _pad(rng, wrong, short_n if chosen_longer else long_n)
        if (len(chosen) > len(rejected)) == chosen_longer and len(chosen) != len(rejected):
            return chosen, rejected
    raise RuntimeError("could not draw a pair with the asked length order")  # not reached with PADDING as is


def human_like_pairs(n_train: int, n_test: int, seed: int = 0, longer_chosen: float = 0.5) -> tuple[list[dict], list[dict]]:
    """(train, test) TRL explicit-prompt pairs (`prompt`, `chosen`, `rejected`) whose label depends
    on content: a right fact beats a wrong one (capitals, animal sounds, colours, sums), an answer
    about the asked topic beats one about another topic. Single-turn. Facts (and so prompts) are
    split between train and test: no question, in any phrasing, on both sides. The chosen answer is
    the longer one (in characters, padded with neutral sentences) in exactly round(longer_chosen * n)
    pairs of each side, in random order. At most 2 pairs per fact (its two phrasings, each with its
    own wrong answer); 183 facts, so n_train + n_test <= 366. Raises ValueError beyond that."""
    rng = random.Random(seed)
    facts = _facts(rng)
    rng.shuffle(facts)
    need_train, need_test = math.ceil(n_train / 2), math.ceil(n_test / 2)
    if need_train + need_test > len(facts):
        raise ValueError(f"human_like_pairs: {n_train} + {n_test} pairs need more than the {len(facts)} facts x 2 phrasings")
    out = []
    for facts_side, n in ((facts[:need_train], n_train), (facts[need_train:need_train + need_test], n_test)):
        slots = [(f, q) for f in facts_side for q in f[1]][:n]
        longer = [i < round(longer_chosen * n) for i in range(n)]
        rng.shuffle(longer)
        pairs = []
        for (key, _, right, wrongs), question in slots:
            chosen, rejected = _length_pair(rng, right, rng.choice(wrongs), longer[len(pairs)])
            pairs.append({"prompt": question, "chosen": chosen, "rejected": rejected, "fact": key})
        rng.shuffle(pairs)
        out.append(pairs)
    return out[0], out[1]
