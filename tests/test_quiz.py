"""The quiz content and its data model (explorer.quiz, explorer.quiz_content): every question has a valid answer
key and a reason for every option, the 15 lesson topics are covered (by an independent id -> topic map), the
numeric answer matches the decode bound computed here from its cited numbers, grading and URLs behave, and
malformed content is refused at construction with a message naming the bad value."""
from __future__ import annotations

import dataclasses
from urllib.parse import parse_qsl

import pytest

from explorer.quiz import TOPICS, Kind, Numeric, Option, Question, Quiz, SeeIt, Trap, grade, normalize, see, url
from explorer.quiz_content import QUESTIONS, QUIZ

# The lesson's topic of each question, written down independently of the content module.
TOPIC_OF = {"ptq": 1, "cliff-name": 2, "hypotheses": 3, "ai-helps": 4, "ai-limit": 5, "brief": 6, "fp8": 7,
            "awq": 8, "validate": 9, "tradeoff": 10, "decode-bound": 10, "gptq-compute": 11, "why-uneven": 12,
            "ai-plan": 13, "gptq-bits": 14, "cliff-risk": 15}
EXPLORER_PAGES = {"layer_lab", "formats", "outliers", "memory", "cliffs", "gptq", "awq"}


def test_every_lesson_topic_has_a_question_and_each_question_its_topic():
    assert len(TOPICS) == 15
    assert {q.id: q.topic for q in QUESTIONS} == TOPIC_OF
    assert set(TOPIC_OF.values()) == set(range(1, 16))


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q.id)
def test_answer_key_is_valid_and_every_option_has_its_reason(q: Question):
    assert grade(q, q.answer_key).correct
    assert q.explanation.strip() and q.prompt.strip() and q.title.strip()
    if q.kind is Kind.NUMBER:
        assert q.numeric.traps and all(t.why.strip() for t in q.numeric.traps)
        for t in q.numeric.traps:  # every typical slip is graded wrong and recognised as that slip
            g = grade(q, t.value)
            assert not g.correct and g.trap == t
        return
    assert all(o.why.strip() and o.text.strip() for o in q.options)
    assert len({o.text for o in q.options}) == len(q.options)
    right = {o.key for o in q.options if o.correct}
    wrong = [o.key for o in q.options if not o.correct]
    assert wrong
    if q.kind is Kind.SINGLE:
        assert len(right) == 1 and all(not grade(q, k).correct for k in wrong)
    else:  # one missing or one extra option is wrong
        assert len(right) >= 2
        for k in right:
            assert not grade(q, right - {k}).correct
        for k in wrong:
            assert not grade(q, right | {k}).correct


def test_the_mix_of_question_kinds():
    kinds = [q.kind for q in QUESTIONS]
    assert kinds.count(Kind.MULTI) >= 2 and kinds.count(Kind.NUMBER) >= 1 and kinds.count(Kind.SINGLE) >= 8
    assert len({q.prompt for q in QUESTIONS}) == len(QUESTIONS)


def test_decode_bound_answer_follows_from_its_cited_numbers():
    """tokens/s <= bandwidth / bytes per token: H100 SXM 3.35 TB/s (NVIDIA datasheet), Llama-3.1-8B 8.03e9
    parameters, INT4 g128 with fp16 scale and zero = 4 + 32/128 bits."""
    q = QUIZ.get("decode-bound")
    bits = 4 + 32 / 128
    bound = 3.35e12 / (8.03e9 * bits / 8)
    assert bound == pytest.approx(785.3, abs=0.1)
    assert grade(q, bound).correct and grade(q, round(bound)).correct
    assert not grade(q, bound * 1.05).correct and not grade(q, bound * 0.95).correct
    slips = {"bits as bytes": 3.35e12 / (8.03e9 * bits), "nominal 4 bits": 3.35e12 / (8.03e9 * 4 / 8),
             "bf16": 3.35e12 / (8.03e9 * 2)}
    for what, value in slips.items():
        g = grade(q, value)
        assert not g.correct and g.trap is not None, what


def test_every_question_opens_a_live_view_on_an_explorer_page():
    for q in QUESTIONS:
        live = [s for s in q.see_it if not s.pending]
        assert live and {s.page for s in live} <= EXPLORER_PAGES, q.id
    assert not any(s.pending for q in QUESTIONS for s in q.see_it)  # every page a link names is registered now
    linked = {s.page for q in QUESTIONS for s in q.see_it}
    assert {"gptq", "awq"} <= linked


def test_each_explorer_page_lists_the_questions_that_link_to_it():
    for page in EXPLORER_PAGES:
        listed = QUIZ.for_page(page)
        assert listed, page
        assert [q.id for q in listed] == [q.id for q in QUESTIONS if any(s.page == page for s in q.see_it)]
    assert QUIZ.for_page("home") == ()
    assert {q.id for q in QUIZ.for_page("layer_lab")} == {"ptq", "fp8"}


def test_url_is_one_function_for_every_link():
    assert url("layer_lab", {"fmt": "fp8_e4m3", "gran": "tensor"}) == "layer_lab?fmt=fp8_e4m3&gran=tensor"
    assert url("quiz") == "quiz" and url("quiz", {}) == "quiz"
    s = see("cliffs", "x", cfs="INT4 per-channel · RTN", cs="int8_ch,int4_t", cq=40)
    assert s.url.startswith("cliffs?cfs=INT4+per-channel+%C2%B7+RTN&cs=int8_ch,int4_t&cq=40")
    assert dict(parse_qsl(s.url.split("?", 1)[1])) == s.query == {"cfs": "INT4 per-channel · RTN",
                                                                   "cs": "int8_ch,int4_t", "cq": "40"}
    with pytest.raises(ValueError, match="page='Layer Lab'"):
        url("Layer Lab")
    with pytest.raises(ValueError, match="page='/memory'"):
        url("/memory")


def test_grading_and_normalising_answers():
    fp8 = QUIZ.get("fp8")
    assert grade(fp8, "b").correct and not grade(fp8, "a").correct
    assert grade(fp8, "a").chosen == frozenset("a")
    with pytest.raises(ValueError, match="option 'z' is not allowed"):
        grade(fp8, "z")
    with pytest.raises(ValueError, match="exactly one"):
        normalize(fp8, ["a", "b"])
    multi = QUIZ.get("hypotheses")
    assert grade(multi, ["c", "a", "b"]).correct and grade(multi, ("a", "b", "c")).correct
    assert not grade(multi, ["a", "b"]).correct
    num = QUIZ.get("decode-bound")
    assert grade(num, "785").correct
    for bad in ("many", None, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="is not allowed"):
            normalize(num, bad)
    assert QUIZ.score({"fp8": "b", "hypotheses": ("a", "b"), "decode-bound": 785.0}) == (2, 3)
    assert QUIZ.number("ptq") == 1 and QUIZ.number(QUESTIONS[-1].id) == len(QUESTIONS)
    with pytest.raises(ValueError, match="question 'nope' is not allowed"):
        QUIZ.get("nope")


# --- malformed content is refused at construction ----------------------------------------------------------------
LINK = see("layer_lab", "Layer Lab", fmt="int4")
OPTS = (Option("a", "one", True, "because"), Option("b", "two", False, "because not"),
        Option("c", "three", False, "because not"))
GOOD = Question("ok", 1, "t", "p?", Kind.SINGLE, "why", (LINK,), OPTS)


def test_a_well_formed_question_builds():
    assert GOOD.answer_key == "a" and GOOD.pages == ("layer_lab",)


@pytest.mark.parametrize("change, match", [
    (dict(id="Has Space"), "id='Has Space' is not allowed"),
    (dict(topic=16), "topic=16 is not allowed; one of 1..15"),
    (dict(topic=0), "topic=0 is not allowed"),
    (dict(explanation="  "), "explanation='  ' is not allowed"),
    (dict(see_it=()), "at least one SeeIt"),
    (dict(see_it=(see("gptq", "soon", pending=True),)), "every link is pending"),
    (dict(options=OPTS[:2]), "needs >= 3 options and exactly one right one, not 2 with 1"),
    (dict(options=(OPTS[0], dataclasses.replace(OPTS[1], correct=True), OPTS[2])), "exactly one right one"),
    (dict(options=(OPTS[0], OPTS[2], OPTS[1])), "run a, b, c"),
    (dict(kind=Kind.MULTI), "multi-select question needs >= 4 options"),
    (dict(kind=Kind.NUMBER), "a number question has a Numeric and no options"),
    (dict(kind="single"), "kind='single' is not allowed"),
])
def test_malformed_questions_are_refused(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(GOOD, **change)


def test_malformed_options_links_and_numbers_are_refused():
    with pytest.raises(ValueError, match="why of option 'a'"):
        Option("a", "text", True, "")
    with pytest.raises(ValueError, match="option key='A'"):
        Option("A", "text", True, "why")
    with pytest.raises(ValueError, match="correct=1 is not allowed"):
        Option("a", "text", 1, "why")
    with pytest.raises(ValueError, match="repeat a key"):
        SeeIt("memory", "m", (("mfmt", "int4"), ("mfmt", "int8")))
    with pytest.raises(ValueError, match="param 'mctx'='' is not allowed"):
        SeeIt("memory", "m", (("mctx", ""),))
    with pytest.raises(ValueError, match="label='' is not allowed"):
        see("memory", "")
    trap = Trap(98.0, "bits as bytes")
    with pytest.raises(ValueError, match="trap 790 is not allowed: it lies within the tolerance of 785"):
        Numeric(785.0, 0.03, "tok/s", 0, 1e5, 1, (Trap(790, "close"),))
    with pytest.raises(ValueError, match="traps=\\(\\) is not allowed"):
        Numeric(785.0, 0.03, "tok/s", 0, 1e5, 1, ())
    with pytest.raises(ValueError, match="rel_tol=0.0 is not allowed"):
        Numeric(785.0, 0.0, "tok/s", 0, 1e5, 1, (trap,))
    with pytest.raises(ValueError, match="answer=785.0 is not allowed"):
        Numeric(785.0, 0.03, "tok/s", 0, 500, 1, (trap,))
    with pytest.raises(ValueError, match="trap value=nan"):
        Trap(float("nan"), "x")
    num = Numeric(785.0, 0.03, "tok/s", 0, 1e5, 1, (trap,))
    with pytest.raises(ValueError, match="numeric=.* is only allowed for Kind.NUMBER"):
        dataclasses.replace(GOOD, numeric=num)


def test_the_quiz_refuses_duplicate_ids_and_uncovered_topics():
    with pytest.raises(ValueError, match="must be unique"):
        Quiz(QUESTIONS + (QUESTIONS[0],))
    with pytest.raises(ValueError, match=r"topics \[15\] have no question"):
        Quiz(tuple(q for q in QUESTIONS if q.topic != 15))
