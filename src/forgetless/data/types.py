"""The shapes data takes on its way to the loop: Example → Experience → Stream."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One question with its short answer. `uid` is stable across runs (used in predictions)."""

    uid: str
    question: str
    answer: str
    concept: str = ""
    relation: str = ""


@dataclass
class Experience:
    """One step of the stream: train examples (memorization) and test examples (generalization)."""

    index: int
    train: list[Example]
    test: list[Example]
    concepts: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[Example]:
        if name not in ("train", "test"):
            raise ValueError(f"unknown split {name!r}")
        return self.train if name == "train" else self.test


@dataclass
class Stream:
    name: str
    experiences: list[Experience]

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
            }
            for exp in self.experiences
        ]
