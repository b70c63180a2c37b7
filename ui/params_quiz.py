"""Query-string parameters of the Quiz page: which question is open (`quiz?q=fp8`)."""
from __future__ import annotations

from explorer.quiz_content import QUIZ
from ui.state import Param

QUESTION = Param("q", QUIZ.ids[0], choices=QUIZ.ids, label="question")
QUIZ_PAGE = [QUESTION]
