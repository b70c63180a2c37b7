"""The project's own tasks for SmolLM2-135M-Instruct (optional model; the weights in its package are already
Q4_1, so every result is "re-quantizing an already Q4_1 model").

- perplexity on held-out prose, code and numbers (explorer.tasks.lm_texts), one task each: the next-token
  decisions behind perplexity differ by kind of text (shared/facts/real-weights.md: INT4 g128 raised prose
  perplexity by 54% while two-choice tasks held);
- two-choice facts: the continuation with the higher summed log-likelihood is chosen (as in lm-evaluation-
  harness "acc"), from hand-written tables (capitals, sums, days, months, opposites, young animals, plurals);
- subject-verb agreement across an attractor noun of the other number ("The keys near the cabinet" -> are),
  the agreement-attraction probe of Linzen et al. 2016 (arXiv:1611.01368), generated from word lists.
All items come from deterministic index arithmetic; no random numbers.
"""
from __future__ import annotations

from explorer.tasks.base import ChoiceItem, Grain, Kind, Task
from explorer.tasks.lm_texts import CODE, NUMBERS, PROSE

CAPITALS = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Canada", "Ottawa"),
    ("Australia", "Canberra"), ("Greece", "Athens"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Poland", "Warsaw"), ("Austria", "Vienna"),
    ("Ireland", "Dublin"), ("Hungary", "Budapest"), ("Turkey", "Ankara"), ("India", "New Delhi"),
    ("Kenya", "Nairobi"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"), ("Chile", "Santiago"),
    ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("South Korea", "Seoul"), ("Indonesia", "Jakarta"),
    ("the Netherlands", "Amsterdam"), ("Belgium", "Brussels"), ("Cuba", "Havana"), ("Iran", "Tehran"),
    ("Iraq", "Baghdad"), ("Ukraine", "Kyiv"), ("the Philippines", "Manila"), ("Colombia", "Bogota"),
    ("Scotland", "Edinburgh"), ("Wales", "Cardiff"),
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
OPPOSITES = (
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("happy", "sad"), ("old", "young"),
    ("light", "dark"), ("open", "closed"), ("early", "late"), ("full", "empty"), ("strong", "weak"),
    ("rich", "poor"), ("thick", "thin"), ("high", "low"), ("wet", "dry"), ("hard", "soft"), ("long", "short"),
    ("loud", "quiet"), ("inside", "outside"), ("win", "lose"), ("buy", "sell"), ("push", "pull"),
    ("first", "last"), ("true", "false"), ("north", "south"), ("east", "west"), ("left", "right"),
    ("day", "night"), ("start", "finish"), ("clean", "dirty"),
)
YOUNG = (("dog", "puppy"), ("cat", "kitten"), ("cow", "calf"), ("sheep", "lamb"), ("horse", "foal"),
         ("goat", "kid"), ("frog", "tadpole"), ("bear", "cub"), ("duck", "duckling"), ("pig", "piglet"),
         ("swan", "cygnet"), ("kangaroo", "joey"))
PLURALS = (("mouse", "mice"), ("child", "children"), ("foot", "feet"), ("tooth", "teeth"), ("goose", "geese"),
           ("man", "men"), ("woman", "women"), ("person", "people"), ("ox", "oxen"), ("leaf", "leaves"),
           ("knife", "knives"), ("wolf", "wolves"), ("cactus", "cacti"), ("crisis", "crises"),
           ("analysis", "analyses"), ("phenomenon", "phenomena"), ("criterion", "criteria"), ("louse", "lice"))
_SUM_SHIFTS = (1, -1, 2, 10, -10, 3)

NOUNS = (("key", "keys"), ("book", "books"), ("door", "doors"), ("teacher", "teachers"), ("dog", "dogs"),
         ("picture", "pictures"), ("letter", "letters"), ("car", "cars"), ("window", "windows"),
         ("bottle", "bottles"), ("student", "students"), ("lamp", "lamps"))
ATTRACTORS = (("cabinet", "cabinets"), ("table", "tables"), ("house", "houses"), ("chair", "chairs"),
              ("box", "boxes"), ("tree", "trees"), ("wall", "walls"), ("bed", "beds"))
PREPOSITIONS = ("near", "behind", "next to", "beside", "under")
VERBS = ((" is", " are"), (" was", " were"), (" has", " have"))


def facts_task() -> Task:
    """Two-choice facts from tables: 40 capitals, 81 sums, 7 days, 12 months, 30 opposites, 12 young animals,
    18 plurals = 200 items."""
    items = []
    n = len(CAPITALS)
    for i, (country, capital) in enumerate(CAPITALS):
        items.append(ChoiceItem(f"The capital of {country} is", (f" {capital}", f" {CAPITALS[(i + 7) % n][1]}")))
    for i in range(81):
        a, b = 3 + (7 * i) % 47, 2 + (13 * i) % 38
        wrong = a + b + _SUM_SHIFTS[i % len(_SUM_SHIFTS)]
        items.append(ChoiceItem(f"{a} + {b} =", (f" {a + b}", f" {wrong}")))
    for i, d in enumerate(DAYS):
        items.append(ChoiceItem(f"The day after {d} is", (f" {DAYS[(i + 1) % 7]}", f" {DAYS[(i + 3) % 7]}")))
    for i, m in enumerate(MONTHS):
        items.append(ChoiceItem(f"The month after {m} is", (f" {MONTHS[(i + 1) % 12]}",
                                                            f" {MONTHS[(i + 5) % 12]}")))
    k = len(OPPOSITES)
    for i, (w, o) in enumerate(OPPOSITES):
        items.append(ChoiceItem(f"The opposite of {w} is", (f" {o}", f" {OPPOSITES[(i + 11) % k][1]}")))
    for i, (animal, baby) in enumerate(YOUNG):
        items.append(ChoiceItem(f"A baby {animal} is called a", (f" {baby}", f" {YOUNG[(i + 5) % len(YOUNG)][1]}")))
    for i, (one, many) in enumerate(PLURALS):
        items.append(ChoiceItem(f"The plural of {one} is", (f" {many}", f" {one}s")))
    return Task("facts", "smollm2", "Two-choice facts", Kind.LM_CHOICE, Grain.MEDIUM,
                "Medium. A prompt (\"The capital of Peru is\", \"17 + 25 =\") and two continuations: right when "
                "the true one has the higher summed log-likelihood; the margin is the log-likelihood difference. "
                "Generated from hand-written tables (40 capitals, 81 sums, days, months, opposites, young animals, "
                "irregular plurals); the wrong answer is another row of the same table.", tuple(items))


def agreement_task() -> Task:
    """'The {noun} {prep} the {attractor}' + is/are: the verb must agree with the noun, not the attractor."""
    items = []
    for i in range(240):
        noun = NOUNS[i % len(NOUNS)]
        plural = (i // len(NOUNS)) % 2 == 1
        attractor = ATTRACTORS[(3 * i + i // 7) % len(ATTRACTORS)][0 if plural else 1]  # the other number
        prep = PREPOSITIONS[(i // 2) % len(PREPOSITIONS)]
        verbs = VERBS[(i // 24) % len(VERBS)]
        items.append(ChoiceItem(f"The {noun[1] if plural else noun[0]} {prep} the {attractor}", verbs,
                                1 if plural else 0))
    return Task("agreement", "smollm2", "Subject-verb agreement", Kind.LM_CHOICE, Grain.FINE,
                "Fine. \"The keys near the cabinet\" + is / are: right when the verb agreeing with the subject (not "
                "with the nearer attractor noun of the other number) has the higher log-probability. 240 items from "
                "12 nouns x 8 attractors x 5 prepositions x 3 verb pairs (deterministic), half singular subjects.",
                tuple(items))


def _text_task(key: str, title: str, grain: Grain, texts: tuple[str, ...], what: str) -> Task:
    return Task(key, "smollm2", title, Kind.LM_TEXT, grain,
                f"{what} Score: perplexity over three held-out passages written for this project (lower is "
                "better; change in percent). Decisions: every next-token top-1 prediction, so flips count the "
                "tokens whose most likely continuation changed.", texts=texts)


def smollm2_tasks() -> tuple[Task, ...]:
    return (
        _text_task("ppl_prose", "Perplexity: prose", Grain.COARSE, PROSE, "Coarse. Everyday English prose."),
        _text_task("ppl_code", "Perplexity: code", Grain.MEDIUM, CODE, "Medium. Python and JavaScript code."),
        _text_task("ppl_numbers", "Perplexity: numbers", Grain.FINE, NUMBERS,
                   "Fine. Text dense with figures (prices, times, measurements), read digit by digit."),
        facts_task(),
        agreement_task(),
    )
