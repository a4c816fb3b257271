#!/usr/bin/env python3
"""Writes renderings.json: each conversation of conversations.json rendered by each chat template
(*.jinja) it applies to, by a real Jinja engine set up as transformers' apply_chat_template sets it
up (sandboxed, trim_blocks, lstrip_blocks, loopcontrols, a {% generation %} tag, tojson,
raise_exception). The C++ renderer (core/text/chat_template) must reproduce them byte for byte.

    python3 make_renderings.py        # Debian 12: apt install python3-jinja2
"""
import json
import pathlib

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = pathlib.Path(__file__).parent


class GenerationTag(Extension):
    """{% generation %}...{% endgeneration %}: renders its body (transformers also records where
    the assistant's tokens are; the text is the same)."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[GenerationTag, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

conversations = json.loads((HERE / "conversations.json").read_text(encoding="utf-8"))
renderings = []
for conversation in conversations:
    for name in conversation["templates"]:
        template = env.from_string((HERE / f"{name}.jinja").read_text(encoding="utf-8"))
        text = template.render(messages=conversation["messages"], tools=None, documents=None,
                               add_generation_prompt=conversation.get("add_generation_prompt", False),
                               bos_token="", eos_token="<|im_end|>",
                               **conversation.get("kwargs", {}))
        renderings.append({"conversation": conversation["name"], "template": name, "text": text})

(HERE / "renderings.json").write_text(
    json.dumps({"generator": f"jinja2 {jinja2.__version__}", "renderings": renderings},
               ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
print(f"renderings.json: {len(renderings)} renderings")
