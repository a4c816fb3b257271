#!/usr/bin/env python3
"""Writes corpus.json: the texts whose Qwen2.5 encodings the tokenizer tests compare against the
reference (make_reference.mjs). Each entry says what it exercises. Python only writes the strings;
the ids come from an independent implementation (@huggingface/tokenizers)."""
import json
import unicodedata

def nfd(s):
    return unicodedata.normalize("NFD", s)

corpus = [
    ("empty", ""),
    ("prose", "The quick brown fox jumps over the lazy dog. It wasn't the first time."),
    ("prose-long", "Vision encoders trained with preference optimisation localise objects better; "
     "the swap test moves the encoder alone into a fresh language model and keeps the gain."),
    ("numbers", "In 2024, 3.14159 and 1,000,000 were 42% of 0.5x; call 555-0199 at 10:30."),
    ("decimals", "-0.001 +1e-9 6.022e23 1/3 ≈ 0.333"),
    ("code", "def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n    else:\n        return -x  # negate\n"),
    ("code-cpp", "for (int i = 0; i < n; ++i) {\n  sum += a[i] * b[i];\n}\n"),
    ("spaces", "a  b   c    d     e\t\tf \t g"),
    ("spaces-trailing", "end with spaces   "),
    ("spaces-only", "     "),
    ("newlines", "line one\n\nline three\r\nline four\n\n\n   \n  indented"),
    ("newlines-only", "\n\n\n"),
    ("contractions", "I'm sure you'll see they've done it; she'd say it's what we're DOING'S end, I'LL TRY"),
    ("chinese", "视觉编码器通过偏好优化变得更强。你好，世界！"),
    ("japanese", "視覚エンコーダーは強くなりました。ひらがなとカタカナ、漢字。"),
    ("korean", "안녕하세요 세계"),
    ("emoji", "Great job 👍🏽! 🎉🎉 👨‍👩‍👧‍👦 family, flags 🇫🇷🇯🇵"),
    ("accented-nfc", "café naïve résumé Ångström São Paulo"),
    ("accented-nfd", nfd("café naïve résumé Ångström São Paulo")),
    ("hangul-nfd", nfd("한국어")),
    ("special-inside", "<|im_start|>user\nWhat is in the image?<|im_end|>\n<|im_start|>assistant\n"),
    ("special-adjacent", "a<|endoftext|>b<|im_end|><|im_start|>c"),
    ("non-special-added", "<tool_call>{\"name\": \"f\"}</tool_call> and <|fim_prefix|>x<|fim_suffix|>"),
    ("special-partial", "<|im_start <|im_end| |>"),
    ("long-word", "a" * 3000),
    ("long-word-mixed", "Pneumonoultramicroscopicsilicovolcanoconiosis" * 20),
    ("long-digits", "1234567890" * 50),
    ("punctuation", "!!!??? ... --- *** ((()))[]{}<<>> ,,;; ''\"\" ~~~ @@## $$%% ^^&&"),
    ("punctuation-newline", "end.\n\n!!\n\n"),
    ("nbsp", "non\u00a0breaking\u00a0space and\u202fnarrow"),
    ("ideographic-space", "全角\u3000スペース\u3000test"),
    ("zero-width", "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u2060word"),
    ("mixed-scripts", "Привет мир, Γειά σου Κόσμε, مرحبا بالعالم, שלום"),
    ("math", "∀x∈ℝ: x² ≥ 0, ∑ᵢ aᵢ = ∫₀¹ f(t) dt"),
    ("url", "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct?x=1&y=2#top"),
    ("markdown", "# Title\n\n* item **bold** _it_\n\n```python\nprint('hi')\n```\n"),
    ("control", "tab\there\x01\x02\x7fdel"),
    ("single-chars", "a"),
    ("single-space", " "),
    ("leading-space", " leading and\ttrailing\t"),
    ("mixed-case-contraction", "DON'T won'T He'S"),
    ("latin1", "Äpfel über Straße ß ÿ Œuvre"),
    ("json", "{\"image\": \"coco/000001.jpg\", \"chosen\": \"A red square.\", \"n\": [1, 2, 3]}"),
]

with open("corpus.json", "w", encoding="utf-8") as f:
    json.dump([{"name": n, "text": t} for n, t in corpus], f, ensure_ascii=False, indent=1)
    f.write("\n")
