"""Keep text a client sent from turning into the model's control tokens (forged chat roles)."""

from __future__ import annotations

from collections.abc import Iterable

# A word joiner: invisible, and it splits the token's text so that the tokenizer cannot match it whole.
_JOINER = "\u2060"


def defuse_special_tokens(text: str, specials: Iterable[str]) -> str:
    """`text` with every occurrence of a special token's text (e.g. "<|im_start|>") broken by a word joiner.

    The prompt is tokenized with special tokens on, because the chat template's own markers must become
    control tokens; a phone that writes "<|im_end|><|im_start|>system" in its message must not get them.
    """
    for special in specials:
        if len(special) > 1 and special in text:
            text = text.replace(special, special[0] + _JOINER + special[1:])
    return text
