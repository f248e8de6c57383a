"""Chat templates rendered without a tokenizer, and the prompt format a template writes.

The GGUF export (the template it embeds, the Ollama Modelfile) and the llama.cpp backend (which renders prompts
from the GGUF's own template) read templates the same way as transformers' ``apply_chat_template``.
"""

from __future__ import annotations


def render_template(
    template: str, messages: list[dict[str, str]], add_generation_prompt: bool, **tokens
) -> str:
    # The environment transformers' apply_chat_template renders with, so both paths write the same text.
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, **tokens
    )


# What each prompt format the project trains writes for one system turn "s", one user turn "u" and the
# generation prompt: TinyLlama's Zephyr style, and ChatML as SmolLM2-Instruct and many others ship it.
_PROBE = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
_FAMILIES = {
    "zephyr": "<|system|>\ns</s>\n<|user|>\nu</s>\n<|assistant|>\n",
    "chatml": "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n",
}


def template_family(template: str | None) -> str | None:
    """``zephyr`` or ``chatml`` when ``template`` renders a system and a user turn as that format does."""
    if not template:
        return None
    try:
        text = render_template(template, _PROBE, True, bos_token="<s>", eos_token="</s>")
    except Exception:  # a template that does not render is no format the project serves
        return None
    return next((name for name, want in _FAMILIES.items() if text == want), None)
