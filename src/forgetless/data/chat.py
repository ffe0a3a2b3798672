"""The model's own chat template as the run's prompt (`data.chat_template`).

A chat template (Jinja, in the tokenizer or a file) is rendered once for a user message holding a
sentinel, with the generation prompt; the text around the sentinel becomes the prompt template
`...{question}...` that every encoder, sampler and parser already uses. So an example is the
user turn and the assistant header, then the answer and EOS — the loss and the scorers look at
the answer and EOS only, as with a plain template.

A conversation with several turns before its answer (`Example.turns`, from sharegpt data) is
rendered turn by turn, each with its own role header, into the example's own `prompt`; without a
chat template its question flattens the turns into text.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from forgetless.core.errors import ConfigError, DataError
from forgetless.data.types import Stream

SENTINEL = "\x00question\x00"


def prompt_template_for(data, tokenizer) -> str:
    """The prompt template a run uses: `data.prompt_template`, or the chat template rendered
    around `{question}` (`data.chat_template`: "auto" — the tokenizer's own — or a file)."""
    if data.chat_template == "none":
        return data.prompt_template
    text = _render(data, tokenizer, [{"role": "user", "content": SENTINEL}],
                   _template(data, tokenizer))
    if not isinstance(text, str) or text.count(SENTINEL) != 1:
        raise ConfigError(f"data.chat_template: {data.chat_template}: the rendered template "
                          f"must hold the user message exactly once")
    return text.replace("{", "{{").replace("}", "}}").replace(SENTINEL, "{question}")


def as_the_model_sees_it(stream: Stream, data, tokenizer) -> tuple[str, Stream]:
    """The prompt template and the stream as a run encodes them: the chat template rendered
    into `data.prompt_template`'s place, conversations into their examples' prompts. The run, its
    `forgetless landscape` and `forgetless data --examples` all start here."""
    return prompt_template_for(data, tokenizer), conversations_rendered(stream, data, tokenizer)


def conversations_rendered(stream: Stream, data, tokenizer) -> Stream:
    """The stream with every conversation of several turns rendered through the chat template
    into its example's `prompt` (with the generation prompt, ready for the answer); the stream
    itself where there is no chat template or no such conversation."""
    if data.chat_template == "none" or not any(
            ex.turns for e in stream.experiences for ex in e.train + e.test):
        return stream
    template = _template(data, tokenizer)

    def rendered(ex):
        if not ex.turns:
            return ex
        messages = [{"role": role, "content": text} for role, text in ex.turns]
        try:
            prompt = _render(data, tokenizer, messages, template)
            history = _assistant_spans(data, tokenizer, messages, template, prompt) \
                if ex.history else ()
        except ConfigError as e:
            raise DataError(f"example {ex.uid}: {e}") from None
        return dataclasses.replace(ex, prompt=prompt, history=history)

    experiences = [dataclasses.replace(e, train=[rendered(x) for x in e.train],
                                       test=[rendered(x) for x in e.test])
                   for e in stream.experiences]
    return dataclasses.replace(stream, experiences=experiences)


def _assistant_spans(data, tokenizer, messages: list[dict], template: str | None,
                     prompt: str) -> tuple[tuple[int, int], ...]:
    """Where each earlier assistant turn sits in the rendered `prompt`: from the end of the
    conversation rendered up to its header (with the generation prompt) to the end of the
    conversation rendered through it — its text and the template's end of turn."""
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant" or k == 0:
            continue
        head = _render(data, tokenizer, messages[:k], template)
        through = _render(data, tokenizer, messages[:k + 1], template, generation_prompt=False)
        if not (through.startswith(head) and prompt.startswith(through)):
            raise ConfigError(f"data.chat_template: {data.chat_template}: the template renders "
                              f"this conversation's turns differently as it grows, so its "
                              f"earlier assistant turns cannot be found for data.history_loss")
        spans.append((len(head), len(through)))
    return tuple(spans)


def _template(data, tokenizer) -> str | None:
    """The chat template `data.chat_template` chooses (None: the tokenizer's own), read once."""
    choice = data.chat_template
    if choice == "auto":
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("data.chat_template=auto: this model's tokenizer has no chat "
                              "template; use none (data.prompt_template) or a template file")
        return None
    path = Path(choice)
    if not path.is_file():
        raise ConfigError(f"data.chat_template: {choice}: no such file (expected auto, none "
                          f"or the path of a Jinja chat template)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"data.chat_template: {choice}: not UTF-8 text ({e.reason})") from None


def _render(data, tokenizer, messages: list[dict], template: str | None,
            generation_prompt: bool = True) -> str:
    """`messages` through `template` (`_template`) with the generation prompt (unless told
    otherwise), without the BOS the tokenizer adds itself. ConfigError naming
    `data.chat_template` where it cannot."""
    choice = data.chat_template
    try:
        text = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=generation_prompt)
    except Exception as e:  # jinja2 syntax and runtime errors, template exceptions
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"data.chat_template: {choice}: the template does not render "
                          f"({first})") from None
    bos = tokenizer.bos_token
    adds_bos = tokenizer("", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]
    if isinstance(text, str) and bos and adds_bos and text.startswith(bos):
        text = text[len(bos):]  # the tokenizer puts it there itself
    return text
