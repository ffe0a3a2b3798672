"""Published task orders, by source (PAPERS.md, last section).

Classification i–iv: de Masson d'Autume et al. 2019 (MbPA++), used by LAMOL, IDBR and most LM CL
work; O1–O3: the 4-task standard CL benchmark of Progressive Prompts / O-LoRA. SuperNI orders 1
and 2: the 15-task SuperNI sequence of SAPT (as in its public scripts). long-4…6: the 15-task
long sequence of Progressive Prompts (its orders 4, 5, 6), read by the jsonl source from
`<task>.jsonl` files. TRACE: the benchmark's own order of its 8 tasks.
"""

from __future__ import annotations

CLASSIFICATION = {
    "i": ["yelp", "ag_news", "dbpedia", "amazon", "yahoo"],
    "ii": ["dbpedia", "yahoo", "ag_news", "amazon", "yelp"],
    "iii": ["yelp", "yahoo", "amazon", "dbpedia", "ag_news"],
    "iv": ["ag_news", "yelp", "amazon", "yahoo", "dbpedia"],
    "O1": ["dbpedia", "amazon", "yahoo", "ag_news"],
    "O2": ["dbpedia", "amazon", "ag_news", "yahoo"],
    "O3": ["yahoo", "amazon", "ag_news", "dbpedia"],
}

SUPERNI = {
    "superni-1": [
        "task1572_samsum_summary", "task363_sst2_polarity_classification",
        "task1290_xsum_summarization", "task181_outcome_extraction",
        "task002_quoref_answer_generation", "task1510_evalution_relation_extraction",
        "task639_multi_woz_user_utterance_generation", "task1729_personachat_generate_next",
        "task073_commonsenseqa_answer_generation", "task1590_diplomacy_text_generation",
        "task748_glucose_reverse_cause_event_detection",
        "task511_reddit_tifu_long_text_summarization", "task591_sciq_answer_generation",
        "task1687_sentiment140_classification", "task875_emotion_classification",
    ],
    "superni-2": [
        "task748_glucose_reverse_cause_event_detection",
        "task073_commonsenseqa_answer_generation", "task875_emotion_classification",
        "task002_quoref_answer_generation", "task1687_sentiment140_classification",
        "task591_sciq_answer_generation", "task363_sst2_polarity_classification",
        "task1572_samsum_summary", "task511_reddit_tifu_long_text_summarization",
        "task1290_xsum_summarization", "task639_multi_woz_user_utterance_generation",
        "task1510_evalution_relation_extraction", "task181_outcome_extraction",
        "task1729_personachat_generate_next", "task1590_diplomacy_text_generation",
    ],
}

TRACE = {
    "trace": ["C-STANCE", "FOMC", "MeetingBank", "Py150", "ScienceQA", "NumGLUE-cm",
              "NumGLUE-ds", "20Minuten"],
}

JSONL = {
    "long-4": ["mnli", "cb", "wic", "copa", "qqp", "boolq", "rte", "imdb", "yelp", "amazon",
               "sst2", "dbpedia", "ag", "multirc", "yahoo"],
    "long-5": ["multirc", "boolq", "wic", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst2",
               "dbpedia", "ag", "yelp", "amazon", "yahoo"],
    "long-6": ["yelp", "amazon", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst2", "dbpedia",
               "ag", "yahoo", "multirc", "boolq", "wic"],
}

ORDERS: dict[str, dict[str, list[str]]] = {
    "classification": CLASSIFICATION, "superni": SUPERNI, "trace": TRACE, "jsonl": JSONL,
}
