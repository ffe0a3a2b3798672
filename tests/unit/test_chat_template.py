"""`data.chat_template`: the model's chat template (or a file) rendered into the run's prompt."""

import pytest

from forgetless.core.config import ModelConfig, load_config
from forgetless.core.errors import ConfigError, DataError
from forgetless.data.chat import prompt_template_for
from forgetless.data.collate import answer_separator, encode
from forgetless.data.types import Example
from forgetless.eval.scoring import score_choice, score_teacher_forced
from forgetless.models.load import load_model, load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(ModelConfig())  # the embedded SmolLM2-Instruct tokenizer


def data(**kw):
    return load_config(None, [f"data.{k}={v}" for k, v in kw.items()]).data


def test_auto_is_the_tokenizers_template_around_the_question(tokenizer):
    template = prompt_template_for(data(chat_template="auto"), tokenizer)
    assert template.endswith("<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")
    assert template.startswith("<|im_start|>system\n")
    enc = encode(Example("u", "What is Zorp?", "a fish"), tokenizer, template, max_length=512)
    tokens = tokenizer.convert_ids_to_tokens(enc.input_ids)
    # the loss and the scorers look at the answer and EOS (<|im_end|>, the assistant turn's end);
    # the answer follows the assistant header's newline directly, as the model writes it
    assert tokenizer.decode(enc.input_ids[-enc.n_answer:]) == "a fish<|im_end|>"
    assert tokenizer.decode(enc.input_ids[:-enc.n_answer]).endswith(
        "<|im_start|>user\nWhat is Zorp?<|im_end|>\n<|im_start|>assistant\n")
    assert tokens.count("<|im_start|>") == 3  # system, user, assistant; no extra BOS


def test_none_keeps_the_prompt_template(tokenizer):
    assert prompt_template_for(data(), tokenizer) == "Question: {question}\n Short Answer:"


def test_a_template_file_with_literal_braces(tokenizer, tmp_path):
    path = tmp_path / "chat.jinja"
    path.write_text("{% for m in messages %}{{ '{' }}Q{{ '}' }} {{ m['content'] }}{% endfor %}"
                    "{% if add_generation_prompt %} A:{% endif %}")
    template = prompt_template_for(data(chat_template=str(path)), tokenizer)
    assert template == "{{Q}} {question} A:"
    assert template.format(question="why?") == "{Q} why? A:"


@pytest.mark.parametrize("text, expected", [
    ("{% for m in messages %}", "the template does not render"),
    ("no message here", "must hold the user message exactly once"),
])
def test_templates_that_cannot_be_used(tokenizer, tmp_path, text, expected):
    path = tmp_path / "bad.jinja"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        prompt_template_for(data(chat_template=str(path)), tokenizer)


def test_errors_before_anything_runs(tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        prompt_template_for(data(chat_template=str(tmp_path / "nope.jinja")), tokenizer)
    with pytest.raises(ConfigError, match="data.prompt_template is not used with"):
        load_config(None, ["data.chat_template=auto", "data.prompt_template=Q: {question} A:"])
    tokenizer_without = type("T", (), {"chat_template": None})()
    with pytest.raises(ConfigError, match="has no chat template"):
        prompt_template_for(data(chat_template="auto"), tokenizer_without)


def test_the_answer_follows_a_prompt_after_a_space_unless_it_ends_in_whitespace(tokenizer):
    assert answer_separator("Question: {question}\n Short Answer:") == " "
    assert answer_separator("<|im_start|>assistant\n") == ""
    assert answer_separator("Q: {question} A: ") == ""
    plain = encode(Example("u", "Why?", "because"), tokenizer, "Q: {question} A:", 64)
    spaced = encode(Example("u", "Why?", "because"), tokenizer, "Q: {question} A: ", 64)
    assert tokenizer.decode(plain.input_ids) == tokenizer.decode(spaced.input_ids)  # one space
    # choice candidates are tokenised as encode tokenises the answer: the right one's tokens
    # are the example's own answer tokens, so its NLL is the teacher-forced one
    template = prompt_template_for(data(chat_template="auto"), tokenizer)
    model = load_model(ModelConfig(name="tiny-llama-2m-v4k"), tokenizer, seed=0).eval()
    ex = Example("u", "What is Zorp?", "a fish", choices=("a fish", "a bird"))
    enc = encode(ex, tokenizer, template, 512)
    [score] = score_choice(model, tokenizer, [enc], ["a fish"], [["a fish", "a bird"]], 2,
                           separator=answer_separator(template))
    [tf] = score_teacher_forced(model, tokenizer, [enc], 2, 8)
    assert score.nll == pytest.approx(tf.nll, rel=1e-4)


def test_a_conversation_is_rendered_turn_by_turn(tokenizer, tmp_path):
    import json

    from forgetless.data.chat import conversations_rendered
    from forgetless.data.sources.registry import build_stream

    turns = [{"from": "system", "value": "Be terse."}, {"from": "human", "value": "Colour?"},
             {"from": "gpt", "value": "Which one?"}, {"from": "human", "value": "The first."},
             {"from": "gpt", "value": "red"}]
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"conversations": turns}) + "\n"
                    + json.dumps({"conversations": turns[1:2] + turns[4:]}) + "\n")
    cfg = load_config(None, ["data.source=hf", f"data.datasets=[{path}]", "data.test_fraction=0.5",
                             "data.chat_template=auto"]).data
    stream = conversations_rendered(build_stream(cfg), cfg, tokenizer)
    examples = stream.experiences[0].train + stream.experiences[0].test
    several = next(ex for ex in examples if ex.turns)
    single = next(ex for ex in examples if not ex.turns)
    template = prompt_template_for(cfg, tokenizer)
    # each earlier turn keeps its role: the conversation's own system turn, the model's earlier
    # answer as an assistant turn — exactly what the tokenizer renders for these messages
    messages = [{"role": r, "content": t} for r, t in
                [("system", "Be terse."), ("user", "Colour?"), ("assistant", "Which one?"),
                 ("user", "The first.")]]
    want = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert several.prompt == want and "You are a helpful" not in several.prompt
    enc = encode(several, tokenizer, template, 512)
    assert tokenizer.decode(enc.input_ids) == want + "red<|im_end|>"
    assert tokenizer.decode(enc.input_ids[-enc.n_answer:]) == "red<|im_end|>"
    # a single turn still goes through the run's template around its question
    assert single.prompt == "" and single.question == "Colour?"
    # without a chat template the turns stay flattened in the question
    plain = load_config(None, ["data.source=hf", f"data.datasets=[{path}]"]).data
    flat = conversations_rendered(build_stream(plain), plain, tokenizer)
    assert all(ex.prompt == "" for e in flat.experiences for ex in e.train + e.test)


def test_a_conversation_the_template_cannot_render_is_named(tokenizer, tmp_path):
    import json

    from forgetless.data.chat import conversations_rendered
    from forgetless.data.sources.registry import build_stream

    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"conversations": [
        {"from": "human", "value": "q"}, {"from": "function", "value": "f()"},
        {"from": "gpt", "value": "a"}]}) + "\n")
    template = tmp_path / "strict.jinja"
    template.write_text("{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}"
                        "{{ raise_exception('unknown role ' + m['role']) }}{% endif %}"
                        "{{ m['content'] }}{% endfor %}")
    cfg = load_config(None, ["data.source=hf", f"data.datasets=[{path}]",
                             f"data.chat_template={template}", "data.test_fraction=0.5"]).data
    stream = build_stream(cfg)
    [ex] = stream.experiences[0].train + stream.experiences[0].test
    assert ex.question == "User: q\nFunction: f()"  # flattened, any role
    with pytest.raises(DataError, match=f"example {ex.uid}: data.chat_template: .*strict.jinja: "
                                        "the template does not render .*unknown role function"):
        conversations_rendered(stream, cfg, tokenizer)


def _conversation_stream(tokenizer, tmp_path, *overrides):
    import json

    from forgetless.data.chat import conversations_rendered
    from forgetless.data.sources.registry import build_stream

    turns = [{"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Which one?"},
             {"from": "human", "value": "The first."}, {"from": "gpt", "value": "Blue, then?"},
             {"from": "human", "value": "Yes."}, {"from": "gpt", "value": "red"}]
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"conversations": turns}) + "\n")
    cfg = load_config(None, ["data.source=hf", f"data.datasets=[{path}]", *overrides]).data
    stream = conversations_rendered(build_stream(cfg), cfg, tokenizer)
    return cfg, (stream.experiences[0].train + stream.experiences[0].test)[0]


@pytest.mark.parametrize("chat", ["auto", "none"])
def test_history_loss_trains_every_assistant_turn_and_scores_the_last(tokenizer, tmp_path, chat):
    from forgetless.data.collate import IGNORE, collate

    cfg, ex = _conversation_stream(tokenizer, tmp_path, "data.history_loss=true",
                                   f"data.chat_template={chat}")
    template = prompt_template_for(cfg, tokenizer)
    trained = encode(ex, tokenizer, template, 512, history=True)
    scored = encode(ex, tokenizer, template, 512)
    assert trained.input_ids == scored.input_ids and scored.history == ()
    assert tokenizer.decode(trained.input_ids[-trained.n_answer:]) == (
        "red<|im_end|>" if chat == "auto" else " red<|im_end|>")
    # the two earlier assistant turns, each its own run of tokens; no user turn among them
    runs, run = [], []
    for j in trained.history:
        if run and j != run[-1] + 1:
            runs.append(run)
            run = []
        run.append(j)
    runs.append(run)
    said = [tokenizer.decode([trained.input_ids[j] for j in r]) for r in runs]
    if chat == "auto":  # the text and the template's end of turn
        assert said == ["Which one?<|im_end|>\n", "Blue, then?<|im_end|>\n"]
    else:
        assert said == [" Which one?", " Blue, then?"]
    # the batch's labels hold exactly those tokens and the answer, in place, beside a short row
    short = encode(Example("s", "Hi?", "yo"), tokenizer, template, 512)
    batch = collate([trained, short], tokenizer.pad_token_id)
    row, keep = batch["labels"][0], batch["labels"].shape[1]
    targets = [int(t) for t in row if t != IGNORE]
    assert targets == [trained.input_ids[j] for j in trained.history] + \
        trained.input_ids[-trained.n_answer:]
    assert len(targets) == trained.n_targets
    ids = batch["input_ids"][0]
    for t in range(keep):  # label t is the token after kept position t
        if row[t] != IGNORE:
            assert row[t] == ids[ids.shape[0] - keep + t + 1]
    assert (batch["labels"][1] != IGNORE).sum() == short.n_answer


def test_without_history_loss_only_the_answer_is_a_target(tokenizer, tmp_path):
    cfg, ex = _conversation_stream(tokenizer, tmp_path, "data.chat_template=auto")
    assert ex.history == ()
    assert encode(ex, tokenizer, prompt_template_for(cfg, tokenizer), 512, history=True).history == ()


def test_history_loss_teaches_the_earlier_turns(tokenizer, tmp_path):
    """On a tiny model, 40 steps on one conversation: with history_loss the earlier assistant
    turns are learned (their loss falls far), without it they are only context."""
    import torch

    from forgetless.data.collate import IGNORE, answer_nll, collate, forward_answer_logits

    cfg, ex = _conversation_stream(tokenizer, tmp_path, "data.history_loss=true",
                                   "data.chat_template=auto")
    template = prompt_template_for(cfg, tokenizer)
    with_history = encode(ex, tokenizer, template, 512, history=True)
    answer_only = encode(ex, tokenizer, template, 512)
    probe = collate([with_history], tokenizer.pad_token_id)
    history_only = probe["labels"].clone()
    history_only[:, -1 - with_history.n_answer:] = IGNORE

    def history_nll(model) -> float:
        with torch.no_grad():
            logits = forward_answer_logits(model, probe).logits
        return float(answer_nll(logits, history_only).sum()) / len(with_history.history)

    losses = {}
    for name, item in (("history", with_history), ("answer", answer_only)):
        model = load_model(ModelConfig(name="tiny-llama-2m-v4k"), tokenizer, seed=0)
        before = history_nll(model)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        batch = collate([item], tokenizer.pad_token_id)
        for _ in range(40):
            opt.zero_grad()
            out = forward_answer_logits(model, batch)
            (answer_nll(out.logits, batch["labels"]).sum() / item.n_targets).backward()
            opt.step()
        losses[name] = (before, history_nll(model))
    print(losses)
    assert losses["history"][0] == pytest.approx(losses["answer"][0])
    assert losses["history"][1] < 1.0 and losses["answer"][1] > 5.0


def test_history_targets_follow_a_prompt_cut_from_the_left(tokenizer, tmp_path):
    cfg, ex = _conversation_stream(tokenizer, tmp_path, "data.history_loss=true",
                                   "data.chat_template=auto")
    template = prompt_template_for(cfg, tokenizer)
    full = encode(ex, tokenizer, template, 512, history=True)
    # cut through the first earlier turn: its first two tokens go, the rest stay targets
    length = len(full.input_ids) - full.history[0] - 2
    cut = encode(ex, tokenizer, template, length, history=True)
    assert cut.input_ids == full.input_ids[-length:]
    shift = len(full.input_ids) - length
    assert [cut.input_ids[j] for j in cut.history] == \
        [full.input_ids[j] for j in full.history if j - shift >= 1]
    assert len(cut.history) == len(full.history) - 3  # two cut, one now the first token


def test_a_template_whose_renders_do_not_grow_by_prefix_is_named_for_history_loss(
        tokenizer, tmp_path):
    template = tmp_path / "counting.jinja"  # starts with the number of messages: no prefixes
    template.write_text("{{ messages|length }}{% for m in messages %}<{{ m['role'] }}>"
                        "{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<assistant>"
                        "{% endif %}")
    with pytest.raises(DataError, match=r"example .*data.chat_template: .*counting.jinja: the "
                                        r"template renders this conversation's turns differently"):
        _conversation_stream(tokenizer, tmp_path, "data.history_loss=true",
                             f"data.chat_template={template}")
    _conversation_stream(tokenizer, tmp_path, f"data.chat_template={template}")  # fine without


def test_ewc_fisher_is_of_the_loss_the_run_trains(tokenizer, tmp_path):
    """With data.history_loss the earlier assistant turns are trained, so EWC's Fisher counts
    their tokens too: it equals the squared gradient of the NLL over answer and history targets,
    and differs from the answer-only one."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from forgetless.data.collate import answer_nll, collate, forward_answer_logits
    from forgetless.data.types import Experience
    from forgetless.methods.ewc import EWC, EWCConfig
    from forgetless.methods.hooks import Context

    overrides = ["data.history_loss=true", "data.chat_template=auto"]
    _, ex = _conversation_stream(tokenizer, tmp_path, *overrides)
    cfg = load_config(None, ["data.source=hf", f"data.datasets=[{tmp_path / 'chat.jsonl'}]",
                             "model.name=tiny-llama-2m-v4k", "train.max_length=512", *overrides])
    model = load_model(cfg.model, tokenizer, seed=0)
    AcceleratorState._reset_state(reset_partial_state=True)
    ctx = Context(cfg, Accelerator(cpu=True), model, tokenizer, None, 0)
    ewc = EWC(EWCConfig())
    ewc.after_experience(ctx, Experience(0, [ex], []))

    def squared_gradient(history: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        batch = collate([encode(ex, tokenizer, "{question}", 512, history)],
                        tokenizer.pad_token_id)
        answer_nll(forward_answer_logits(model, batch).logits, batch["labels"]).sum().backward()
        return {n: p.grad ** 2 for n, p in model.named_parameters()}

    trained, answer_only = squared_gradient(True), squared_gradient(False)
    assert ewc.fisher.keys() == trained.keys()
    assert all(torch.allclose(ewc.fisher[n], trained[n]) for n in trained)
    assert not all(torch.allclose(ewc.fisher[n], answer_only[n]) for n in trained)
