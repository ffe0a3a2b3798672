"""The shapes data takes on its way to the loop: Example → Experience → Stream."""

from __future__ import annotations

from dataclasses import dataclass, field


def answer_key(text: str) -> str:
    """An answer as text answers are compared everywhere (the `generate` scorer, the audit's
    concept-blind guesses): stripped and lower-cased, as in the Concept-1K reference code
    (utils/evaluation.py). The `teacher_forced` scorer compares tokens exactly instead."""
    return text.strip().lower()


@dataclass(frozen=True)
class Example:
    """One question with its short answer. `uid` is stable across runs (used in predictions)."""

    uid: str
    question: str
    answer: str
    concept: str = ""
    """What replay balances over: the concept (knowledge streams) or the label (classification)."""
    relation: str = ""
    choices: tuple[str, ...] = ()
    """Candidate answers for log-likelihood choice scoring (`eval.scorer: choice`); the answer is
    one of them. Empty where the data gives none (class-incremental streams use the labels of
    every experience seen so far instead)."""
    references: tuple[str, ...] = ()
    """Every acceptable answer (SuperNI lists several); ROUGE-L takes the best. Empty = (answer,)."""
    text: str = ""
    """Plain text for language modelling (the `corpus` source): when set, the example is this
    text with no prompt template, and every token of it is trained and scored."""
    turns: tuple[tuple[str, str], ...] = ()
    """A conversation's turns before the answer, as (role, text) with role "system", "user" or
    "assistant", where there are several (the question then flattens them into text)."""
    prompt: str = ""
    """The whole prompt, already rendered, used instead of the prompt template around the
    question: a conversation's turns through the model's chat template (data/chat.py)."""
    history: tuple[tuple[int, int], ...] = ()
    """Character spans of a conversation's earlier assistant turns, in `prompt` when it is set,
    else in `question`: trained on as well as the answer (`data.history_loss`); evaluation
    scores the answer alone."""


@dataclass
class Experience:
    """One step of the stream: train examples (memorization) and test examples (generalization)."""

    index: int
    train: list[Example]
    test: list[Example]
    concepts: list[str] = field(default_factory=list)
    name: str = ""
    """Task name (data set or task file) where the stream is made of named tasks."""
    labels: list[str] = field(default_factory=list)
    """Label words of this experience (classification); class-incremental scoring offers the
    union over every experience seen so far."""

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "test"):
            raise ValueError(f"unknown split {name!r}")
        return self.train if name == "train" else self.test


@dataclass
class Stream:
    name: str
    experiences: list[Experience]
    scenario: str = "instance"
    """"instance" (knowledge instances), "task" (task identity known at test time: each example's
    own candidates) or "class" (class-incremental: all labels seen so far are candidates)."""

    def __len__(self) -> int:
        return len(self.experiences)

    def summary(self) -> list[dict]:
        """What `forgetless data --json` prints: one entry per experience."""
        return [
            {
                "id": exp.index,
                "n_train": len(exp.train),
                "n_test": len(exp.test),
                "concepts": list(exp.concepts),
                **({"name": exp.name} if exp.name else {}),
                **({"labels": list(exp.labels)} if exp.labels else {}),
            }
            for exp in self.experiences
        ]

    def examples(self, prompt_template: str) -> list[dict]:
        """What `forgetless data --examples --json` prints: every example of every experience,
        with the prompt exactly as the model sees it (before tokenisation)."""
        return [
            {"experience": exp.index, "split": split, "uid": ex.uid, "question": ex.question,
             "prompt": "" if ex.text else ex.prompt or prompt_template.format(question=ex.question),
             "answer": ex.answer, **({"text": ex.text} if ex.text else {}),
             "concept": ex.concept, "relation": ex.relation,
             **({"choices": list(ex.choices)} if ex.choices else {}),
             **({"references": list(ex.references)} if ex.references else {})}
            for exp in self.experiences for split in ("train", "test") for ex in exp.split(split)
        ]
