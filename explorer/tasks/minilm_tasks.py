"""The project's own sentence tasks for all-MiniLM-L6-v2, from coarse (topic) to fine (one word or one number).

All text is written for this project and generated from hand-written frames by deterministic index arithmetic
(no random numbers), so the same items come back on every machine: 200 topic items, 216 per fine task. Fine tasks are
(anchor, paraphrase, hard negative) triplets scored as in STS-style evaluations of Sentence-BERT (Reimers &
Gurevych 2019, arXiv:1908.10084): right when cos(anchor, paraphrase) > cos(anchor, negative). The paraphrase is
reworded (little word overlap) while the negative keeps almost every word: a bag-of-words-like encoder prefers
the negative, which is why the unquantized model is weak on some of them (shared/facts/real-weights.md).
"""
from __future__ import annotations

from explorer.tasks.base import ChoiceItem, Grain, Kind, Task

NAMES = ("Mira", "Tomas", "Ana", "Jonas", "Leila", "Omar", "Priya", "Felix", "Sofia", "Marco", "Hana", "Ravi",
         "Elena", "Yusuf", "Clara", "Diego", "Nora", "Ivan", "Grace", "Kenji", "Amara", "Lukas", "Zoe", "Pablo")
PER_FRAME = 9  # items per frame in the triplet tasks: 24 frames x 9 = 216

# ---- topic retrieval: (label, filler list, templates with {n} a name and {x} a filler) -----------------------
TOPICS = (
    ("Cooking and recipes", ("soup", "sauce", "rice", "stew", "curry"), (
        "{n} stirred the {x} and let it simmer slowly.", "Add a pinch of salt to the {x} before serving.",
        "{n} burned the {x} because the oven was too hot.", "Chop the onions finely and fry them for the {x}.",
        "The {x} needs another ten minutes in the pan.")),
    ("Sports and games", ("football", "tennis", "basketball", "hockey", "cricket"), (
        "{n} scored twice in the {x} match on Saturday.", "The {x} team trained hard before the final.",
        "{n} was sent off in the second half of the {x} game.",
        "Our {x} coach wants more passing and less shooting.", "{n} won the {x} tournament after a close final.")),
    ("The weather", ("on Monday", "this weekend", "tonight", "tomorrow", "on Friday"), (
        "Heavy rain and strong wind are expected {x}.", "It will be sunny and warm {x}, with a light breeze.",
        "{n} said there could be snow in the hills {x}.", "Thunderstorms may bring hail {x}.",
        "Temperatures will drop below freezing {x}.")),
    ("Computers and software", ("laptop", "server", "phone app", "database", "web browser"), (
        "{n} installed the latest update on the {x}.", "The {x} crashed again after the last patch.",
        "{n} rewrote the code that talks to the {x}.", "Clear the cache and restart the {x} to fix the bug.",
        "The {x} needs more memory to run the program.")),
    ("Health and medicine", ("fever", "back pain", "cough", "headache", "rash"), (
        "{n} went to the clinic because of a {x}.", "The doctor prescribed tablets for the {x}.",
        "Rest and drink plenty of water if the {x} gets worse.", "{n} has had a {x} for three days.",
        "The nurse checked {n}'s blood pressure and asked about the {x}.")),
    ("Money and banking", ("savings account", "mortgage", "credit card", "loan", "pension"), (
        "{n} moved money into the {x} last week.", "The interest rate on the {x} went up again.",
        "{n} paid off the {x} early.", "The bank charged a fee on the {x}.",
        "{n} checked the balance of the {x} online.")),
    ("Travel and holidays", ("Lisbon", "Tokyo", "the mountains", "the coast", "Rome"), (
        "{n} packed a suitcase for the trip to {x}.", "Our flight to {x} was delayed by two hours.",
        "{n} booked a hotel for a week in {x}.", "We took the train to {x} and stayed in a small guesthouse.",
        "{n} bought a map and a guidebook before visiting {x}.")),
    ("Music and concerts", ("piano", "guitar", "violin", "drums", "cello"), (
        "{n} practised the {x} for an hour before the show.", "The band needs a new {x} player for the tour.",
        "{n} played a song on the {x} at the festival.", "The {x} solo was the best part of the album.",
        "{n} tuned the {x} before the rehearsal.")),
)

# ---- paraphrase vs negation: (statement, paraphrase, negation, fillers) --------------------------------------
NEGATION = (
    ("{n} locked the {x} before leaving.", "Before leaving, {n} made sure the {x} was locked.",
     "{n} did not lock the {x} before leaving.", ("door", "gate", "garage", "office")),
    ("{n} finished the {x} on time.", "The {x} was completed by {n} on schedule.",
     "{n} did not finish the {x} on time.", ("report", "painting", "puzzle", "essay")),
    ("{n} likes the new {x}.", "The new {x} pleases {n}.", "{n} does not like the new {x}.",
     ("kitchen", "teacher", "schedule", "phone")),
    ("{n} is coming to the {x} tonight.", "Tonight {n} will attend the {x}.",
     "{n} is not coming to the {x} tonight.", ("party", "concert", "dinner", "meeting")),
    ("{n} has seen the {x}.", "The {x} has been seen by {n}.", "{n} has never seen the {x}.",
     ("film", "ocean", "report", "photos")),
    ("The {x} was open when {n} arrived.", "When {n} got there, the {x} was already open.",
     "The {x} was not open when {n} arrived.", ("shop", "museum", "bank", "library")),
    ("{n} agreed with the {x}.", "{n} supported the {x}.", "{n} did not agree with the {x}.",
     ("plan", "decision", "proposal", "budget")),
    ("{n} can swim across the {x}.", "{n} is able to swim to the other side of the {x}.",
     "{n} cannot swim across the {x}.", ("lake", "river", "bay", "pool")),
    ("{n} paid the {x} bill.", "The {x} bill was settled by {n}.", "{n} did not pay the {x} bill.",
     ("electricity", "phone", "water", "internet")),
    ("{n} found the missing {x}.", "The missing {x} was located by {n}.", "{n} did not find the missing {x}.",
     ("keys", "wallet", "passport", "cat")),
    ("{n} enjoyed the {x} at the festival.", "At the festival, {n} had a great time at the {x}.",
     "{n} did not enjoy the {x} at the festival.", ("concert", "parade", "food stalls", "fireworks")),
    ("{n} trusts the new {x}.", "{n} has confidence in the new {x}.", "{n} does not trust the new {x}.",
     ("manager", "doctor", "system", "neighbour")),
    ("{n} answered the {x} quickly.", "{n} replied to the {x} without delay.",
     "{n} did not answer the {x} quickly.", ("email", "letter", "question", "message")),
    ("{n} was at home on {x}.", "On {x}, {n} stayed in the house.", "{n} was not at home on {x}.",
     ("Monday", "Friday", "Sunday", "Tuesday")),
    ("{n} wants to buy the {x}.", "{n} would like to purchase the {x}.", "{n} does not want to buy the {x}.",
     ("bicycle", "house", "painting", "laptop")),
    ("The {x} arrived before noon, {n} said.", "According to {n}, the {x} came in the morning.",
     "The {x} did not arrive before noon, {n} said.", ("package", "train", "bus", "delivery")),
    ("{n} booked the {x} for the trip.", "For the trip, {n} made a reservation for the {x}.",
     "{n} did not book the {x} for the trip.", ("hotel", "car", "flights", "tickets")),
    ("{n} understood the {x}.", "The {x} made sense to {n}.", "{n} did not understand the {x}.",
     ("instructions", "lecture", "joke", "contract")),
    ("{n} is allowed to use the {x}.", "{n} has permission to use the {x}.", "{n} is not allowed to use the {x}.",
     ("car", "lab", "printer", "studio")),
    ("{n} fixed the {x} yesterday.", "Yesterday the {x} was repaired by {n}.", "{n} did not fix the {x} yesterday.",
     ("sink", "fence", "bike", "heater")),
    ("{n} often drinks {x} in the morning.", "In the morning, {n} usually has {x}.",
     "{n} never drinks {x} in the morning.", ("coffee", "tea", "juice", "milk")),
    ("The {x} worked after {n} restarted it.", "Once {n} rebooted it, the {x} ran again.",
     "The {x} did not work after {n} restarted it.", ("router", "laptop", "printer", "server")),
    ("{n} told the truth about the {x}.", "{n} was honest about the {x}.",
     "{n} did not tell the truth about the {x}.", ("accident", "money", "delay", "mistake")),
    ("{n} will sign the {x} today.", "Today {n} is going to sign the {x}.", "{n} will not sign the {x} today.",
     ("contract", "lease", "petition", "form")),
)

# ---- paraphrase vs changed number: (statement, paraphrase, low, high); the negative has {k} -> another number -
NUMBERS = (
    ("{n} paid {k} dollars for the tickets.", "The tickets cost {n} {k} dollars.", 12, 95),
    ("{n} ran {k} kilometres on Saturday.", "On Saturday, {n} covered {k} kilometres on foot.", 3, 42),
    ("{n}'s train leaves at {k} o'clock.", "At {k} o'clock, the train {n} is taking departs.", 1, 12),
    ("{n} invited {k} guests to the wedding.", "There were {k} people on {n}'s wedding guest list.", 20, 150),
    ("{n} has lived in the city for {k} years.", "For {k} years now, {n} has made the city home.", 2, 40),
    ("The hotel room cost {n} {k} euros a night.", "{n} paid {k} euros per night for the hotel room.", 40, 300),
    ("{n} read {k} books last summer.", "Last summer, {n} got through {k} books.", 2, 30),
    ("{n} waited {k} minutes for the bus.", "The bus took {k} minutes to come while {n} waited.", 5, 60),
    ("{n}'s flat is on floor {k} of the building.", "In the building, {n} lives on level {k}.", 1, 30),
    ("{n} scored {k} points in the final game.", "In the final game, {n} got {k} points.", 4, 50),
    ("{n} bought {k} apples at the market.", "At the market, {n} picked up {k} apples.", 2, 20),
    ("The package {n} sent weighs {k} kilograms.", "{n} shipped a parcel of {k} kilograms.", 1, 40),
    ("{n} is {k} years old.", "{n} turned {k} this year.", 8, 90),
    ("{n} drove {k} miles to visit family.", "To visit family, {n} made a {k}-mile drive.", 15, 400),
    ("{n} saved {k} dollars last month.", "Last month, {n} put {k} dollars aside.", 50, 900),
    ("The meeting with {n} lasted {k} minutes.", "{n}'s meeting went on for {k} minutes.", 10, 120),
    ("{n} planted {k} trees in the garden.", "In the garden, {n} put in {k} new trees.", 2, 25),
    ("{n} answered {k} questions correctly.", "{n} got {k} questions right.", 3, 50),
    ("{n} slept for {k} hours last night.", "Last night, {n} got {k} hours of sleep.", 3, 11),
    ("{n} ordered {k} pizzas for the party.", "For the party, {n} got {k} pizzas delivered.", 2, 20),
    ("{n} owes the bank {k} thousand dollars.", "The bank is owed {k} thousand dollars by {n}.", 5, 250),
    ("{n} climbed {k} flights of stairs.", "{n} walked up {k} floors on foot.", 2, 30),
    ("{n} sold {k} paintings at the fair.", "At the fair, {k} of {n}'s paintings were sold.", 2, 30),
    ("{n} needs {k} more days to finish.", "It will take {n} another {k} days to be done.", 2, 60),
)
_NUMBER_SHIFTS = (1, 2, 3, 5, 10, -1, -2, -3, -5, 7)

# ---- paraphrase vs swapped roles: (statement, paraphrase); the negative is the paraphrase with {a}, {b} swapped
ROLES = (
    ("{a} called {b} after the meeting.", "After the meeting, {a} phoned {b}."),
    ("{a} paid {b} for the repairs.", "For the repairs, {a} gave {b} the money."),
    ("{a} taught {b} how to drive.", "{a} gave {b} driving lessons."),
    ("{a} beat {b} at chess.", "{a} won a chess game against {b}."),
    ("{a} sent {b} a long letter.", "{a} wrote {b} a long letter and posted it."),
    ("{a} hired {b} last spring.", "Last spring, {a} gave {b} a job."),
    ("{a} followed {b} into the kitchen.", "{a} walked into the kitchen right behind {b}."),
    ("{a} lent {b} a bicycle.", "{a} let {b} borrow a bicycle."),
    ("{a} interviewed {b} for the podcast.", "For the podcast, {a} asked {b} questions."),
    ("{a} thanked {b} for the gift.", "{a} expressed gratitude to {b} for the gift."),
    ("{a} visited {b} in the hospital.", "{a} went to see {b} at the hospital."),
    ("{a} warned {b} about the storm.", "{a} told {b} that a storm was coming."),
    ("{a} drove {b} to the airport.", "{a} gave {b} a lift to the airport."),
    ("{a} introduced {b} to the team.", "{a} presented {b} to the team."),
    ("{a} forgave {b} for the mistake.", "{a} pardoned {b} for the error."),
    ("{a} invited {b} to dinner.", "{a} asked {b} to come for dinner."),
    ("{a} photographed {b} at the beach.", "At the beach, {a} took pictures of {b}."),
    ("{a} replaced {b} as team captain.", "{a} took over from {b} as team captain."),
    ("{a} owes {b} twenty dollars.", "{a} has to pay {b} back twenty dollars."),
    ("{a} helped {b} move house.", "{a} gave {b} a hand with the move."),
    ("{a} criticised {b} in the meeting.", "In the meeting, {a} found fault with {b}."),
    ("{a} texted {b} at midnight.", "At midnight, {a} sent {b} a text message."),
    ("{a} recommended {b} for the job.", "{a} put {b} forward for the job."),
    ("{a} is waiting for {b} at the station.", "At the station, {a} is expecting {b}."),
)


_TRIPLET_NOTE = ("Scored as a triplet: right when cos(anchor, paraphrase) > cos(anchor, negative); the margin is "
                 "the difference. Template-generated: 24 hand-written frames x 9 fillings (names, objects), so "
                 "items that share a frame are not independent.")


def _name(i: int) -> str:
    return NAMES[i % len(NAMES)]


def topic_task() -> Task:
    """Query sentence -> which of the 8 topic labels it is about (8 topics x 5 templates x 5 fillers = 200)."""
    labels = tuple(t[0] for t in TOPICS)
    items = []
    for t, (_, fillers, templates) in enumerate(TOPICS):
        for k, template in enumerate(templates):
            for j, x in enumerate(fillers):
                query = template.format(n=_name(5 * t + 6 * k + j), x=x)
                items.append(ChoiceItem(query, labels, t))
    return Task("topic", "minilm", "Topic retrieval", Kind.EMBED_CHOICE, Grain.COARSE,
                "Coarse. Which of 8 topic labels (cooking, sport, weather, computers, health, money, travel, "
                "music) is closest to a sentence about one of them? Right when the right label has the highest "
                "cosine; the margin is its cosine minus the best wrong label's. Template-generated: 5 "
                "hand-written sentence frames per topic x 5 fillers; the sentences avoid the label's words.",
                tuple(items))


def negation_task() -> Task:
    items = []
    for f, (s, p, neg, fillers) in enumerate(NEGATION):
        for j in range(PER_FRAME):
            v = dict(n=_name(7 * f + j), x=fillers[j % len(fillers)])
            items.append(ChoiceItem(s.format(**v), (p.format(**v), neg.format(**v)), 0))
    return Task("negation", "minilm", "Paraphrase vs negation", Kind.EMBED_CHOICE, Grain.FINE,
                "Fine. Is a reworded paraphrase closer to the sentence than the same sentence negated "
                "(\"did not\", \"never\", \"cannot\")? " + _TRIPLET_NOTE, tuple(items))


def _other_number(k: int, lo: int, hi: int, j: int) -> int:
    """A different number in [lo, hi], chosen by index j (deterministic)."""
    for step in range(len(_NUMBER_SHIFTS)):
        m = k + _NUMBER_SHIFTS[(j + step) % len(_NUMBER_SHIFTS)]
        if lo <= m <= hi and m != k:
            return m
    return lo if k != lo else hi


def number_task() -> Task:
    items = []
    for f, (s, p, lo, hi) in enumerate(NUMBERS):
        for j in range(PER_FRAME):
            k = lo + (11 * f + 17 * j) % (hi - lo + 1)
            n = _name(7 * f + j)
            m = _other_number(k, lo, hi, j)
            items.append(ChoiceItem(s.format(n=n, k=k), (p.format(n=n, k=k), s.format(n=n, k=m)), 0))
    return Task("number", "minilm", "Paraphrase vs changed number", Kind.EMBED_CHOICE, Grain.FINE,
                "Fine. Is a reworded paraphrase (same number) closer to the sentence than the same sentence with "
                "one number changed? " + _TRIPLET_NOTE, tuple(items))


def roles_task() -> Task:
    items = []
    for f, (s, p) in enumerate(ROLES):
        for j in range(PER_FRAME):
            a, b = _name(5 * f + j), _name(5 * f + j + 1 + j % 5)
            items.append(ChoiceItem(s.format(a=a, b=b), (p.format(a=a, b=b), p.format(a=b, b=a)), 0))
    return Task("roles", "minilm", "Paraphrase vs swapped roles", Kind.EMBED_CHOICE, Grain.FINE,
                "Fine. Is a reworded paraphrase closer to the sentence than the same paraphrase with the two names "
                "swapped (who did what to whom reversed)? Both candidates have exactly the same words, so only "
                "word order tells them apart. " + _TRIPLET_NOTE, tuple(items))


def minilm_tasks() -> tuple[Task, ...]:
    """The four MiniLM tasks, coarse to fine."""
    return (topic_task(), negation_task(), number_task(), roles_task())
