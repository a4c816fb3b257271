// Writes reference.json: the Qwen2.5 encodings of corpus.json by an independent implementation,
// Hugging Face's pure-JS tokenizers (@huggingface/tokenizers 0.2.0). The C++ tokenizer must
// reproduce every id, token and decoded string (tests/test_text.cpp).
//
//   cd tests/data/tokenizer
//   npm install --no-save @huggingface/tokenizers@0.2.0   # node_modules/ is git-ignored
//   node make_reference.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const dir = new URL("../qwen2.5-tokenizer/", import.meta.url);
const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(new URL("tokenizer.json", dir), "utf8")),
  JSON.parse(readFileSync(new URL("tokenizer_config.json", dir), "utf8")));
const corpus = JSON.parse(readFileSync(new URL("corpus.json", import.meta.url), "utf8"));

const entries = corpus.map(({ name, text }) => {
  const { ids, tokens } = tokenizer.encode(text, { add_special_tokens: false });
  const decode = (options) => (ids.length ? tokenizer.decode(ids, options) : "");  // JS refuses []
  return {
    name,
    ids,
    tokens,
    decoded: decode({}),
    decoded_skip_special: decode({ skip_special_tokens: true }),
    // Each id alone: a token that holds part of a UTF-8 sequence decodes to U+FFFD.
    decoded_each: ids.map((id) => tokenizer.decode([id])),
    nfc: text.normalize("NFC"),
  };
});
writeFileSync(new URL("reference.json", import.meta.url),
  JSON.stringify({ generator: "@huggingface/tokenizers 0.2.0", entries }, null, 0)
    .replace(/\},\{"name"/g, '},\n{"name"') + "\n");
console.log(`reference.json: ${entries.length} texts`);
