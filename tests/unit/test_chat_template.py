"""`data.chat_template`: the model's chat template (or a file) rendered into the run's prompt."""

import pytest

from forgetless.core.config import ModelConfig, load_config
from forgetless.core.errors import ConfigError
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
    with pytest.raises(ConfigError, match="method lamol parses"):
        load_config(None, ["data.chat_template=auto", "method=lamol"])
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
    model = load_model(ModelConfig(name="tiny-llama-2m"), tokenizer, seed=0).eval()
    ex = Example("u", "What is Zorp?", "a fish", choices=("a fish", "a bird"))
    enc = encode(ex, tokenizer, template, 512)
    [score] = score_choice(model, tokenizer, [enc], ["a fish"], [["a fish", "a bird"]], 2,
                           separator=answer_separator(template))
    [tf] = score_teacher_forced(model, tokenizer, [enc], 2, 8)
    assert score.nll == pytest.approx(tf.nll, rel=1e-4)
