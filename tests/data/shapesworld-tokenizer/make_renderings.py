#!/usr/bin/env python3
"""Renders chat_template.jinja (the ShapesWorld tokenizer's template, as `pivot export --format hf`
writes it into tokenizer_config.json) with Debian's python3-jinja2, the engine transformers uses,
into renderings.json. test_text checks that the template in the code is this file and that the
word tokenizer reads every rendering as the trainer's own prompt and response ids.
Run: python3 make_renderings.py"""
import json

import jinja2

template = jinja2.Environment().from_string(open("chat_template.jinja").read())
cases = [
    ("what colour is the circle ?", "red"),
    ("how many blue objects are there ?", "three"),
    ("is the green square on the left or the right ?", "left"),
]
out = []
for question, answer in cases:
    user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
    out.append({
        "question": question,
        "answer": answer,
        "conversation": template.render(
            messages=[user, {"role": "assistant", "content": answer}], add_generation_prompt=False),
        "generation_prompt": template.render(messages=[user], add_generation_prompt=True),
    })
json.dump(out, open("renderings.json", "w"), indent=1)
