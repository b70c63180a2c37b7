"""Quiz: the lesson's questions on quantization trade-offs, each answered by a live view of the app.

Thin: the content and the grading are data and pure functions (explorer.quiz, explorer.quiz_content); the
progress lives in the session (ui.check_yourself.Progress). Keyboard only: each question is a form (radio,
checkboxes or a number input, then a submit button). Presenter mode hides the answer until it is revealed and
shows the audience a short link and a QR code of the question.
"""
import io

import streamlit as st

from explorer.quiz import TOPICS, Kind, Question, grade, normalize, url
from explorer.quiz_content import QUIZ
from ui import check_yourself as cy
from ui import common, state
from ui.params_quiz import QUESTION, QUIZ_PAGE

PARAMS = QUIZ_PAGE
WARN = "_quiz_warn"
INTRO = ("Each question is answered by a **live view on real weights**: answer it, read why each option is right "
         "or wrong, then open the view that shows it. Your answers stay for this session.")
PRESENTER_QUIZ_CSS = """
<style>
[data-testid="stMarkdownContainer"] h3 { font-size: 2.4rem !important; line-height: 1.25; }
.stRadio label p, .stCheckbox label p { font-size: 1.5rem !important; }
</style>
"""


def _go(qid: str) -> None:
    state.put(QUESTION, qid)


def _step(delta: int) -> None:
    ids = QUIZ.ids
    _go(ids[(ids.index(state.get(QUESTION)) + delta) % len(ids)])


def _key(q: Question, option: str = "") -> str:
    return f"qz_{q.id}_{cy.progress().attempts.get(q.id, 0)}" + (f"_{option}" if option else "")


def _submit(q: Question) -> None:
    """The form's submit: read the widgets, record the first answer given (callbacks run before the rerun)."""
    ss = st.session_state
    raw = [o.key for o in q.options if ss.get(_key(q, o.key))] if q.kind is Kind.MULTI else ss.get(_key(q))
    try:
        if raw is None or raw == []:
            raise ValueError("no answer")
        answer = normalize(q, raw)
    except ValueError:
        ss[WARN] = q.id
        return
    ss.pop(WARN, None)
    cy.progress().record(q.id, answer)


def answer_widgets(q: Question, recorded) -> None:
    done = recorded is not None
    if q.kind is Kind.SINGLE:
        keys = [o.key for o in q.options]
        st.radio("Your answer", keys, index=keys.index(recorded) if done else None, key=_key(q), disabled=done,
                 format_func=lambda k: f"{k.upper()}. {q.option(k).text}")
    elif q.kind is Kind.MULTI:
        st.caption("Select all that apply, then check.")
        for o in q.options:
            st.checkbox(f"{o.key.upper()}. {o.text}", value=done and o.key in recorded, key=_key(q, o.key),
                        disabled=done)
    else:
        n = q.numeric
        st.number_input(f"Your answer ({n.unit})", min_value=n.lo, max_value=n.hi, step=n.step, format="%.1f",
                        value=float(recorded) if done else None, key=_key(q), disabled=done,
                        placeholder="type a number, then Enter")


def feedback(q: Question, recorded) -> None:
    g = grade(q, recorded)
    if g.correct:
        st.success("**Right.**", icon=":material/check_circle:")
    else:
        st.error("**Not quite.**", icon=":material/cancel:")
    explain(q, chosen=g.chosen, number=None if q.kind is not Kind.NUMBER else float(recorded), trap=g.trap)


def explain(q: Question, chosen=frozenset(), number=None, trap=None) -> None:
    """The answer and why; with `chosen`/`number`, relative to the visitor's answer."""
    st.markdown(f"**Why.** {q.explanation}")
    if q.kind is Kind.NUMBER:
        n = q.numeric
        if number is not None:
            st.markdown(f"Your answer: **{number:,.1f} {n.unit}**. ")
        if trap is not None:
            st.markdown(f"**Your slip:** {trap.why}")
        st.markdown(f"The answer: **{n.answer:,.0f} {n.unit}** (accepted within ±{n.rel_tol:.0%}).")
        st.markdown("Typical slips:\n" + "\n".join(f"- {t.value:,.0f}: {t.why}" for t in n.traps))
    else:
        for o in q.options:
            picked = o.key in chosen
            icon = cy.MARKS[o.correct] if picked or o.correct else cy.MARKS[None]
            note = ("your choice, right" if o.correct else "your choice, wrong") if picked else \
                ("the right answer" + (" (you missed it)" if chosen else "") if o.correct else "")
            st.markdown(f"{icon} **{o.key.upper()}. {o.text}**" + (f" — *{note}*" if note else "") + f"  \n{o.why}")
    st.markdown("**See it live**")
    cy.see_it_links(q)
    if q.sources:
        st.caption("Sources: " + "; ".join(q.sources))


def learner_view(q: Question) -> None:
    prog = cy.progress()
    recorded = prog.answers.get(q.id)
    with st.form(f"quiz_form_{_key(q)}", border=True):
        answer_widgets(q, recorded)
        st.form_submit_button("Check answer", type="primary", disabled=recorded is not None, on_click=_submit,
                              args=(q,))
    if st.session_state.get(WARN) == q.id:
        st.warning("Pick an answer first." if q.kind is not Kind.NUMBER else "Type a number first.")
    if recorded is not None:
        feedback(q, recorded)
        st.button("Try this question again", key=f"again_{q.id}", on_click=prog.reset, args=([q.id],),
                  icon=":material/replay:")


def audience_url(q: Question) -> str:
    """The full URL of this question for the audience (no presenter mode), from the browser's own URL."""
    rel = url(cy.QUIZ_PAGE, {"q": q.id})
    here = (st.context.url or "").split("?")[0].rstrip("/")
    if not here:
        return rel
    base = here[: -len(cy.QUIZ_PAGE)] if here.endswith("/" + cy.QUIZ_PAGE) else here + "/"
    return base + rel


def qr_png(text: str) -> bytes | None:
    try:
        import segno  # optional: without it the short link alone is shown
    except ImportError:
        return None
    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=8, border=2)
    return buf.getvalue()


def presenter_view(q: Question) -> None:
    st.markdown(PRESENTER_QUIZ_CSS, unsafe_allow_html=True)
    prog = cy.progress()
    body, aside = st.columns([3, 1])
    with aside:
        link = audience_url(q)
        png = qr_png(link)
        if png is not None:
            st.image(png, width=240)
        st.markdown(f"**Answer it yourself:**  \n`{link.split('://', 1)[-1]}`")
    with body:
        if q.kind is Kind.NUMBER:
            st.markdown(f"Answer in **{q.numeric.unit}**.")
        else:
            if q.kind is Kind.MULTI:
                st.caption("Select all that apply.")
            for o in q.options:
                st.markdown(f"**{o.key.upper()}.** {o.text}")
        if q.id not in prog.revealed:
            st.button("Reveal the answer", key=f"reveal_{q.id}", type="primary", icon=":material/visibility:",
                      on_click=prog.revealed.add, args=(q.id,))
            return
        right = [o for o in q.options if o.correct]
        st.success("**Answer:** " + (", ".join(f"{o.key.upper()}. {o.text}" for o in right) if right else
                                     f"{q.numeric.answer:,.0f} {q.numeric.unit}"), icon=":material/check_circle:")
        explain(q)
        st.button("Hide the answer", key=f"hide_{q.id}", on_click=prog.revealed.discard, args=(q.id,),
                  icon=":material/visibility_off:")


def navigator(presenter: bool) -> Question:
    c1, c2, c3 = st.columns([4, 1, 1] if presenter else [6, 1, 1], vertical_alignment="bottom")
    with c1:
        st.selectbox("Question", QUIZ.ids, key=state.bind(QUESTION),  # labels fixed: marks would change them
                     format_func=lambda i: f"{QUIZ.number(i)}. {QUIZ.get(i).title}")
        qid = state.commit(QUESTION)
    c2.button("Previous", key="quiz_prev", on_click=_step, args=(-1,), icon=":material/arrow_back:", width="stretch")
    c3.button("Next", key="quiz_next", on_click=_step, args=(1,), icon=":material/arrow_forward:", width="stretch")
    if not presenter:
        st.caption("Progress: " + " · ".join(f"{QUIZ.number(i)}{cy.mark(i)}" for i in QUIZ.ids))
    return QUIZ.get(qid)


def review() -> None:
    prog = cy.progress()
    right, answered = prog.score()
    st.divider()
    st.subheader("Score and review")
    st.markdown(f"**{right} right of {answered} answered** ({len(QUIZ.questions)} questions).")
    mistakes = prog.mistakes()
    if mistakes:
        st.markdown("Review your mistakes:")
        for qid in mistakes:
            st.button(f"{QUIZ.number(qid)}. {QUIZ.get(qid).title}", key=f"review_{qid}", on_click=_go, args=(qid,),
                      icon=":material/cancel:")
    elif answered:
        st.caption("No mistakes so far.")
    c1, c2 = st.columns(2)
    c1.button("Retry my mistakes", key="quiz_retry", on_click=prog.reset, args=(mistakes,), disabled=not mistakes,
              icon=":material/replay:")
    c2.button("Start over", key="quiz_restart", on_click=prog.reset, args=(list(QUIZ.ids),),
              disabled=not prog.answers and not prog.revealed, icon=":material/restart_alt:")


def main():
    sel = common.page_start("Quiz: check yourself", PARAMS, intro=INTRO)
    prog = cy.progress()
    if not sel.presenter:
        right, answered = prog.score()
        st.progress(answered / len(QUIZ.questions),
                    text=f"Score: **{right}** right of {answered} answered · {len(QUIZ.questions)} questions")
    q = navigator(sel.presenter)
    st.markdown(f"### {QUIZ.number(q.id)}. {q.prompt}")
    st.caption(f"Topic {q.topic} of {len(TOPICS)}: {TOPICS[q.topic - 1]}")
    if sel.presenter:
        presenter_view(q)
    else:
        learner_view(q)
        review()
    common.page_end(PARAMS)


main()
