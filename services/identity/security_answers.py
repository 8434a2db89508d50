"""Security questions and a user's answers to them: chosen at first login (activation),
asked again behind a password-reset link (recovery).

Answers are compared as typed words are (NFKC, casefold, whitespace collapsed) and
stored only as argon2id hashes; checking one costs one verification even when the user
has no answer to that question.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .enrollment.codes import hash_secret, normalize_answer, verify_secret
from .i18n import N_
from .models import SecurityAnswer

QUESTIONS = {
    "first_pet": N_("What was the name of your first pet?"),
    "birth_city": N_("In which city were you born?"),
    "first_school": N_("What was the name of your first school?"),
    "childhood_friend": N_("What is the first name of your childhood best friend?"),
    "first_job": N_("What was your first job?"),
    "favourite_teacher": N_("What is the family name of your favourite teacher?"),
    "parents_street": N_("On which street did your parents live when you were a child?"),
}


def record_answers(session: Session, user_id: str, answers: list[tuple[str, str]]) -> None:
    """Store ``user_id``'s answers, each a (question key, answer) pair."""
    for question, answer in answers:
        session.add(SecurityAnswer(user_id=user_id, question=question,
                                   answer_hash=hash_secret(normalize_answer(answer))))


def questions_answered(session: Session, user_id: str) -> list[str]:
    """The keys of the questions ``user_id`` has answered."""
    return list(session.scalars(select(SecurityAnswer.question).where(
        SecurityAnswer.user_id == user_id)))


def answer_matches(session: Session, user_id: str, question: str, answer: str) -> bool:
    """Whether ``answer`` is ``user_id``'s answer to ``question``."""
    stored = session.scalar(select(SecurityAnswer.answer_hash).where(
        SecurityAnswer.user_id == user_id, SecurityAnswer.question == question))
    return verify_secret(stored, normalize_answer(answer))
