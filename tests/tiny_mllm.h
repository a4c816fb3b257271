// The small MLLM configuration that model-level tests build (random weights): a 16 px image in 16
// patches, a 40-token vocabulary with the image placeholder at id 3, grouped-query attention.
#pragma once
#include "model/model_config.h"

inline pivot::MllmConfig tinyMllmConfig() {
  pivot::MllmConfig c;
  c.vision.hidden_size = 32;
  c.vision.intermediate_size = 64;
  c.vision.num_hidden_layers = 3;
  c.vision.num_attention_heads = 4;
  c.vision.image_size = 16;
  c.vision.patch_size = 4;  // 16 patches
  c.text.vocab_size = 40;
  c.text.hidden_size = 32;
  c.text.intermediate_size = 64;
  c.text.num_hidden_layers = 2;
  c.text.num_attention_heads = 4;
  c.text.num_key_value_heads = 2;
  c.image_token_id = 3;
  return c;
}
