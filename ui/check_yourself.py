"""The quiz beside the views: every explorer page ends with a "check yourself" panel listing the quiz questions it
answers (`panel(url_path)`), each a link into the quiz at that question; the quiz's "see it" links lead back.

Also the quiz's session progress (small data in st.session_state: answers, attempts, revealed questions) and the
link helpers both directions use: a link's page is looked up in ui.navigation.PAGES, so a link to a page that is
not registered yet (a pending one) is shown as coming, never as a broken link.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from explorer.quiz import Question, SeeIt, grade
from explorer.quiz_content import QUIZ
from ui import navigation

QUIZ_PAGE = "quiz"
_KEY = "_quiz_progress"


@dataclass
class Progress:
    """One visitor's quiz so far. answers: question id -> the first answer given (str, sorted tuple, float);
    attempts: how many times a question was reset (gives its widgets fresh keys); revealed: presenter reveals."""

    answers: dict = field(default_factory=dict)
    attempts: dict = field(default_factory=dict)
    revealed: set = field(default_factory=set)

    def record(self, qid: str, answer) -> None:
        self.answers[qid] = tuple(sorted(answer)) if isinstance(answer, frozenset) else answer

    def reset(self, qids) -> None:
        for qid in list(qids):
            if self.answers.pop(qid, None) is not None or qid in self.revealed:
                self.attempts[qid] = self.attempts.get(qid, 0) + 1
            self.revealed.discard(qid)

    def correct(self, qid: str) -> bool | None:
        """True/False once answered, None before."""
        if qid not in self.answers:
            return None
        return grade(QUIZ.get(qid), self.answers[qid]).correct

    def score(self) -> tuple[int, int]:
        return QUIZ.score(self.answers)

    def mistakes(self) -> list[str]:
        return [q.id for q in QUIZ.questions if self.correct(q.id) is False]


def progress() -> Progress:
    return st.session_state.setdefault(_KEY, Progress())


# Status marks in markdown (material icons render everywhere; emoji need an emoji font)
MARKS = {True: ":green[:material/check_circle:]", False: ":red[:material/cancel:]",
         None: ":gray[:material/radio_button_unchecked:]"}


def mark(qid: str) -> str:
    """A status mark for markdown labels: answered right, answered wrong, not answered yet."""
    return MARKS[progress().correct(qid)]


def page_file(url_path: str) -> str | None:
    """The file of a registered page, None when no page has this url_path (yet)."""
    return next((f for f, _, u, _ in navigation.PAGES if u == url_path), None)


def page_title(url_path: str) -> str:
    return next((t for _, t, u, _ in navigation.PAGES if u == url_path), url_path)


def see_it_links(q: Question) -> None:
    """The question's live views, as in-app links (the session, and so the quiz progress, is kept)."""
    for s in q.see_it:
        see_it_link(s)


def see_it_link(s: SeeIt) -> None:
    f = page_file(s.page)
    if f is None:  # a pending page that is not registered yet
        st.caption(f"{s.label} — this page is coming soon.")
        return
    st.page_link(f, label=f"See it: {s.label}", icon=":material/open_in_new:", query_params=s.query)


def question_link(q: Question) -> None:
    f = page_file(QUIZ_PAGE)
    label = f"{mark(q.id)} Q{QUIZ.number(q.id)}. {q.title} — {q.prompt}"
    if f is None:
        st.markdown(label)
        return
    st.page_link(f, label=label, query_params={"q": q.id})


def panel(page: str) -> None:
    """At the end of an explorer page: the quiz questions this page answers, each linking into the quiz."""
    qs = QUIZ.for_page(page)
    if not qs:
        return
    answered = sum(progress().correct(q.id) is not None for q in qs)
    with st.expander(f"Check yourself: {len(qs)} quiz question{'s' if len(qs) > 1 else ''} this page answers "
                     f"({answered} answered)", icon=":material/quiz:"):
        for q in qs:
            question_link(q)
