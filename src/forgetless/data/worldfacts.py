"""Real-world facts a pretrained model may know: capitals and regions of countries, from the
offline `countryinfo` package (no download). Used by the general-knowledge probe."""

from __future__ import annotations

import random

from forgetless.data.types import Example


def country_questions(limit: int | None = None, seed: int = 0) -> list[Example]:
    """Capital and region questions, sorted by uid; `limit` keeps a seeded subset."""
    from countryinfo import all_countries

    out = []
    for country in all_countries():
        info = country.info()
        name = (info.get("name") or "").strip()
        if not name:
            continue
        slug = name.lower().replace(" ", "_")
        capital = _text(info.get("capital"))
        region = _text(info.get("region"))
        if capital:
            out.append(Example(f"capital/{slug}", f"What is the capital of {name}?", capital,
                               name, "capital"))
        if region:
            out.append(Example(f"region/{slug}", f"In which region of the world is {name}?",
                               region, name, "region"))
    out.sort(key=lambda ex: ex.uid)
    if limit is not None and limit < len(out):
        out = sorted(random.Random(seed).sample(out, limit), key=lambda ex: ex.uid)
    return out


def _text(value) -> str:
    # The data stores some capitals as a list (Vatican City: ["Vatican City"]); take the first.
    if isinstance(value, list):
        value = value[0] if value else ""
    return (value or "").strip()
