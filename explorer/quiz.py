"""The quiz as data: questions, options, explanations and "see it" links into the app, validated at construction.

The app accompanies a lesson on quantization trade-offs that ends in a quiz on 15 topics (TOPICS). Every question
carries an explanation of its right answer, a reason for every option (why it is right, or why it is wrong), and
links that open the live view answering it (`SeeIt`: a page's url_path plus its link parameters, turned into a
URL by `url`). Grading is a pure function of a question and an answer (`grade`). The content itself lives in
`explorer.quiz_content`; nothing here imports streamlit.
"""
from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Mapping, Union
from urllib.parse import urlencode

# The lesson's 15 topics, in its order (question.topic is the 1-based position here).
TOPICS = (
    "What post-training quantization changes in a trained model",
    "The name for uneven damage across tasks",
    "Why published results are hypotheses for your deployment",
    "What AI tools can genuinely help with",
    "The limit on AI predicting the economics of your workload",
    "The four areas of a decision brief",
    "What FP8 is, and its two common variants",
    "What AWQ takes into account",
    "The mandatory step before production",
    "The trade-off quantization mainly improves",
    "Why GPTQ is not 'free' just because it is post-training",
    "Why one task drops 2% and another 25%",
    "What an AI-drafted benchmarking plan cannot replace",
    "The weight precision GPTQ commonly uses",
    "Why an untested quality cliff is dangerous in production",
)

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")
_PAGE = re.compile(r"^[a-z][a-z0-9_]*$")


class Kind(enum.Enum):
    SINGLE = "single"      # one right option (radio)
    MULTI = "multi"        # one or more right options, chosen together (checkboxes)
    NUMBER = "number"      # a number within a relative tolerance (number input)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what}={value!r} is not allowed; it must be non-empty text")
    return value


def url(page: str, params: Mapping[str, str] | None = None) -> str:
    """The app-relative URL of `page` (a url_path) with `params`: 'layer_lab?fmt=fp8_e4m3&gran=tensor'.

    Relative (no leading slash), so it also works when the app is served under a base path."""
    if not _PAGE.match(page):
        raise ValueError(f"page={page!r} is not allowed; a url_path matches {_PAGE.pattern}")
    query = urlencode(list(params.items()), safe=":,") if params else ""  # ":" and "," stay readable
    return f"{page}?{query}" if query else page


@dataclass(frozen=True)
class SeeIt:
    """A link to the live view that answers a question. `pending`: the page is announced by another issue and may
    not be registered yet (the app shows it as coming; the link test skips it until the page exists)."""

    page: str
    label: str
    params: tuple[tuple[str, str], ...] = ()
    pending: bool = False

    def __post_init__(self) -> None:
        url(self.page)
        _text(self.label, "label")
        keys = [k for k, _ in self.params]
        if len(set(keys)) != len(keys):
            raise ValueError(f"params={self.params!r} repeat a key")
        for k, v in self.params:
            if not (isinstance(k, str) and k and isinstance(v, str) and v):
                raise ValueError(f"param {k!r}={v!r} is not allowed; keys and values are non-empty strings")

    @property
    def query(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def url(self) -> str:
        return url(self.page, self.query)


def see(page: str, label: str, pending: bool = False, **params: str | int) -> SeeIt:
    """A SeeIt from keyword parameters (values written as they appear in a URL)."""
    return SeeIt(page, label, tuple((k, str(v)) for k, v in params.items()), pending)


@dataclass(frozen=True)
class Option:
    """One choice, with the reason it is right or wrong (shown after answering)."""

    key: str
    text: str
    correct: bool
    why: str

    def __post_init__(self) -> None:
        if not (isinstance(self.key, str) and len(self.key) == 1 and self.key.isalpha() and self.key.islower()):
            raise ValueError(f"option key={self.key!r} is not allowed; one lowercase letter a-z")
        _text(self.text, "option text")
        _text(self.why, f"why of option {self.key!r}")
        if not isinstance(self.correct, bool):
            raise ValueError(f"correct={self.correct!r} is not allowed; True or False")


@dataclass(frozen=True)
class Trap:
    """A typical wrong number and the slip that produces it."""

    value: float
    why: str

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"trap value={self.value!r} is not allowed; a finite number")
        _text(self.why, "why of a trap")


@dataclass(frozen=True)
class Numeric:
    """A numeric answer: right when |x - answer| <= rel_tol * |answer|. lo..hi bound the input widget."""

    answer: float
    rel_tol: float
    unit: str
    lo: float
    hi: float
    step: float
    traps: tuple[Trap, ...]

    def __post_init__(self) -> None:
        if not 0 < self.rel_tol < 0.5:
            raise ValueError(f"rel_tol={self.rel_tol!r} is not allowed; 0 < rel_tol < 0.5")
        if not (self.lo <= self.answer <= self.hi) or self.answer == 0:
            raise ValueError(f"answer={self.answer!r} is not allowed; non-zero, within lo..hi={self.lo}..{self.hi}")
        if not self.step > 0:
            raise ValueError(f"step={self.step!r} is not allowed; > 0")
        if not self.traps:
            raise ValueError("traps=() is not allowed; name at least one typical wrong answer and its slip")
        for t in self.traps:
            if self.accepts(t.value):
                raise ValueError(f"trap {t.value!r} is not allowed: it lies within the tolerance of {self.answer}")

    def accepts(self, x: float) -> bool:
        return math.isfinite(x) and abs(x - self.answer) <= self.rel_tol * abs(self.answer)

    def trap_for(self, x: float) -> Trap | None:
        """The trap whose value `x` matches (same relative tolerance), if any."""
        return next((t for t in self.traps if abs(x - t.value) <= self.rel_tol * abs(t.value)), None)


Answer = Union[str, frozenset, float]  # SINGLE: an option key; MULTI: a frozenset of keys; NUMBER: a float


@dataclass(frozen=True)
class Question:
    id: str
    topic: int                       # 1-based index into TOPICS
    title: str                       # a few words, for lists
    prompt: str
    kind: Kind
    explanation: str                 # why the right answer is right
    see_it: tuple[SeeIt, ...]
    options: tuple[Option, ...] = ()
    numeric: Numeric | None = None
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise ValueError(f"id={self.id!r} is not allowed; it must match {_ID.pattern}")
        if self.topic not in range(1, len(TOPICS) + 1):
            raise ValueError(f"topic={self.topic!r} is not allowed; one of 1..{len(TOPICS)}")
        if not isinstance(self.kind, Kind):
            raise ValueError(f"kind={self.kind!r} is not allowed; one of {[k.value for k in Kind]}")
        for what in ("title", "prompt", "explanation"):
            _text(getattr(self, what), what)
        if not self.see_it or not all(isinstance(s, SeeIt) for s in self.see_it):
            raise ValueError(f"see_it={self.see_it!r} is not allowed; at least one SeeIt link")
        if not any(not s.pending for s in self.see_it):
            raise ValueError(f"question {self.id!r}: every link is pending; add one to a page that exists")
        for s in self.sources:
            _text(s, "source")
        if self.kind is Kind.NUMBER:
            if self.options or not isinstance(self.numeric, Numeric):
                raise ValueError(f"question {self.id!r}: a number question has a Numeric and no options")
            return
        if self.numeric is not None:
            raise ValueError(f"question {self.id!r}: numeric={self.numeric!r} is only allowed for Kind.NUMBER")
        keys = [o.key for o in self.options]
        if keys != [chr(ord("a") + i) for i in range(len(keys))]:
            raise ValueError(f"option keys {keys} are not allowed; they run a, b, c, ... in order")
        right = sum(o.correct for o in self.options)
        if self.kind is Kind.SINGLE and (len(keys) < 3 or right != 1):
            raise ValueError(f"question {self.id!r}: a single-choice question needs >= 3 options and exactly one "
                             f"right one, not {len(keys)} with {right}")
        if self.kind is Kind.MULTI and (len(keys) < 4 or right < 2 or right == len(keys)):
            raise ValueError(f"question {self.id!r}: a multi-select question needs >= 4 options, >= 2 right and "
                             f">= 1 wrong, not {len(keys)} with {right} right")

    @property
    def answer_key(self) -> Answer:
        """The right answer, in the form `grade` takes."""
        if self.kind is Kind.NUMBER:
            return self.numeric.answer
        right = frozenset(o.key for o in self.options if o.correct)
        return next(iter(right)) if self.kind is Kind.SINGLE else right

    def option(self, key: str) -> Option:
        for o in self.options:
            if o.key == key:
                return o
        raise ValueError(f"option {key!r} is not allowed; one of {[o.key for o in self.options]}")

    @property
    def pages(self) -> tuple[str, ...]:
        """The pages this question's links open (its 'check yourself' panels), in link order."""
        return tuple(dict.fromkeys(s.page for s in self.see_it))


@dataclass(frozen=True)
class Graded:
    correct: bool
    chosen: frozenset = frozenset()   # option keys picked (choice questions)
    trap: Trap | None = None           # the slip a wrong number matches (number questions)


def normalize(q: Question, answer: object) -> Answer:
    """A raw widget value as the question's Answer type; ValueError on a malformed one."""
    if q.kind is Kind.NUMBER:
        try:
            x = float(answer)
        except (TypeError, ValueError):
            raise ValueError(f"answer={answer!r} is not allowed; a number") from None
        if not math.isfinite(x):
            raise ValueError(f"answer={answer!r} is not allowed; a finite number")
        return x
    keys = frozenset([answer] if isinstance(answer, str) else answer)
    for k in keys:
        q.option(k)
    if q.kind is Kind.SINGLE:
        if len(keys) != 1:
            raise ValueError(f"answer={answer!r} is not allowed; exactly one of {[o.key for o in q.options]}")
        return next(iter(keys))
    return keys


def grade(q: Question, answer: object) -> Graded:
    """Right or wrong, with what was chosen (or the matching slip for a number)."""
    a = normalize(q, answer)
    if q.kind is Kind.NUMBER:
        ok = q.numeric.accepts(a)
        return Graded(ok, trap=None if ok else q.numeric.trap_for(a))
    chosen = frozenset([a]) if isinstance(a, str) else a
    return Graded(chosen == frozenset(o.key for o in q.options if o.correct), chosen)


@dataclass(frozen=True)
class Quiz:
    questions: tuple[Question, ...]

    def __post_init__(self) -> None:
        ids = [q.id for q in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"question ids {ids} are not allowed; they must be unique")
        missing = sorted(set(range(1, len(TOPICS) + 1)) - {q.topic for q in self.questions})
        if missing:
            raise ValueError(f"topics {missing} have no question; every topic 1..{len(TOPICS)} needs one")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(q.id for q in self.questions)

    def get(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise ValueError(f"question {qid!r} is not allowed; one of {list(self.ids)}")

    def number(self, qid: str) -> int:
        """1-based position of a question in the quiz."""
        return self.ids.index(self.get(qid).id) + 1

    def for_page(self, page: str) -> tuple[Question, ...]:
        """The questions whose links open `page` (what its 'check yourself' panel lists)."""
        return tuple(q for q in self.questions if page in q.pages)

    def score(self, answers: Mapping[str, object]) -> tuple[int, int]:
        """(right, answered) over the answers given so far (unknown ids are an error)."""
        right = sum(grade(self.get(qid), a).correct for qid, a in answers.items())
        return right, len(answers)
