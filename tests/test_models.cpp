// Model invariants: shapes, causal masking, relative rotary embeddings, GQA vs MHA, prefix
// attention, gradients reaching the vision encoder through the projector, and the linear layers'
// GEMMs (oneDNN on the CPU) against double precision.
#include <QtTest/QtTest>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <set>

#include "model/attention.h"
#include "model/generate.h"
#include "model/linear.h"
#include "model/mllm.h"
#include "tiny_mllm.h"
#include "torch_compat.h"

using namespace pivot;

namespace {

void randomise(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& p : m.parameters()) p.normal_(0, 0.2);
}

// A float32 tensor's values as a new float64 leaf that records its own gradient: the reference
// computation of the float32 kernels' tests.
torch::Tensor doubleLeaf(const torch::Tensor& t) {
  return t.detach().to(torch::kDouble).requires_grad_(true);
}

// A float32 result against its float64 reference.
bool closeToDouble(const torch::Tensor& got, const torch::Tensor& want) {
  return torch::allclose(got.to(torch::kDouble), want, 1e-4, 1e-4);
}

}  // namespace

class TestModels : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void initTestCase() { torch::manual_seed(7); }

  void shapesAndNames() {
    auto c = tinyMllmConfig();
    Mllm m(c);
    auto params = m->named_parameters();
    QVERIFY(params.contains("vision_tower.encoder.layers.0.self_attn.q_proj.weight"));
    QVERIFY(params.contains("vision_tower.embeddings.patch_embedding.weight"));
    QVERIFY(params.contains("multi_modal_projector.linear_1.weight"));
    QVERIFY(params.contains("language_model.model.layers.1.mlp.gate_proj.weight"));
    QVERIFY(params.contains("language_model.model.layers.0.self_attn.k_proj.bias"));
    QVERIFY(!params.contains("language_model.model.layers.0.self_attn.o_proj.bias"));
    QCOMPARE(params["language_model.model.layers.0.self_attn.k_proj.weight"].sizes().vec(),
             (std::vector<int64_t>{16, 32}));  // 2 kv heads x 8
    auto pixels = torch::randn({2, 3, 16, 16});
    QCOMPARE(m->vision_tower->hiddenStates(pixels).size(), size_t(4));
    QCOMPARE(m->visualTokens(pixels).sizes().vec(), (std::vector<int64_t>{2, 16, 32}));
    auto ids = torch::randint(5, 40, {2, 22});
    ids.narrow(1, 2, 16).fill_(3);
    MllmInputs in{pixels, ids, torch::ones({2, 22}, torch::kInt64),
                  torch::full({2, 22}, -100, torch::kInt64), torch::full({2}, 18, torch::kInt64)};
    QCOMPARE(m->forward(in).sizes().vec(), (std::vector<int64_t>{2, 22, 40}));
  }

  void causalMaskingFutureTokenCannotChangeEarlierLogProbs() {
    LmConfig c = tinyMllmConfig().text;
    CausalLM lm(c);
    randomise(*lm);
    auto ids = torch::randint(0, 40, {1, 10});
    auto changed = ids.clone();
    changed[0][9] = (ids[0][9].item<int64_t>() + 1) % 40;
    auto a = lm->forward(ids), b = lm->forward(changed);
    QVERIFY(torch::allclose(a.narrow(1, 0, 9), b.narrow(1, 0, 9), 1e-5, 1e-6));
    QVERIFY(!torch::allclose(a.narrow(1, 9, 1), b.narrow(1, 9, 1), 1e-5, 1e-6));
  }

  void prefixAttentionSeesWholePrefixButNotTheResponse() {
    LmConfig c = tinyMllmConfig().text;
    CausalLM lm(c);
    randomise(*lm);
    auto embeds = torch::randn({1, 8, 32});
    auto prefix = torch::full({1}, 5, torch::kInt64);
    auto changed = embeds.clone();
    changed[0][4] += 1.0;  // last prefix token
    auto a = lm->forwardEmbeds(embeds, {}, {}, prefix),
         b = lm->forwardEmbeds(changed, {}, {}, prefix);
    QVERIFY(!torch::allclose(a[0][0], b[0][0], 1e-5, 1e-6));  // position 0 sees the whole prefix
    auto changedResponse = embeds.clone();
    changedResponse[0][7] += 1.0;
    auto d = lm->forwardEmbeds(changedResponse, {}, {}, prefix);
    QVERIFY(torch::allclose(a.narrow(1, 0, 7), d.narrow(1, 0, 7), 1e-5,
                            1e-6));  // response stays causal
  }

  void rotaryIsRelative() {
    // Scores q_i . k_j after rotation depend only on i - j: shifting every position leaves them
    // equal.
    auto q = torch::randn({1, 2, 6, 8}), k = torch::randn({1, 2, 6, 8});
    auto pos = torch::arange(6).unsqueeze(0);
    auto [c0, s0] = rotaryTables(pos, 8, 10000.0, torch::kFloat32);
    auto [c1, s1] = rotaryTables(pos + 37, 8, 10000.0, torch::kFloat32);
    auto scores0 = torch::matmul(applyRotary(q, c0, s0), applyRotary(k, c0, s0).transpose(-2, -1));
    auto scores1 = torch::matmul(applyRotary(q, c1, s1), applyRotary(k, c1, s1).transpose(-2, -1));
    QVERIFY(torch::allclose(scores0, scores1, 1e-4, 1e-4));
    QVERIFY(!torch::allclose(applyRotary(q, c0, s0), applyRotary(q, c1, s1), 1e-3,
                             1e-3));  // it does rotate
  }

  void gqaWithAllHeadsEqualsMultiHead() {
    LmConfig gqa = tinyMllmConfig().text;
    gqa.num_key_value_heads = 2;
    LmConfig mha = gqa;
    mha.num_key_value_heads = 4;
    CausalLM a(gqa), b(mha);
    randomise(*a);
    // b duplicates each kv head so head h reads kv head h / 2, exactly what GQA computes.
    {
      torch::NoGradGuard g;
      for (auto& p : b->named_parameters()) {
        auto src = a->named_parameters()[p.key()];
        const bool kv = p.key().find("k_proj") != std::string::npos ||
                        p.key().find("v_proj") != std::string::npos;
        if (!kv) {
          p.value().copy_(src);
          continue;
        }
        auto heads = src.view({2, 8, -1}).repeat_interleave(2, 0);  // (4, hs, ...)
        p.value().copy_(heads.reshape(p.value().sizes()));
      }
    }
    auto ids = torch::randint(0, 40, {2, 9});
    QVERIFY(torch::allclose(a->forward(ids), b->forward(ids), 1e-5, 1e-5));
  }

  // Every layer's y = x W^T + b and its three gradients, on whichever library multiplies float32
  // matrices here, against LibTorch in double precision: a 3-D input that is not contiguous, with
  // and without bias, and a frozen weight (no gradient computed for it) as in the transplant.
  void linearLayersMatchDoublePrecision() {
    qInfo("float32 GEMM: %s", cpuGemmLibrary().c_str());
    for (const bool withBias : {true, false}) {
      auto x = torch::randn({5, 37, 2 * 96}).narrow(2, 0, 96).transpose(0, 1);  // (37, 5, 96)
      QVERIFY(!x.is_contiguous());
      auto w = torch::randn({176, 96}), b = withBias ? torch::randn({176}) : torch::Tensor();
      x.set_requires_grad(true);
      w.set_requires_grad(true);
      if (withBias) b.set_requires_grad(true);
      const auto upstream = torch::randn({37, 5, 176});
      auto y = applyLinear(x, w, b);
      QCOMPARE(y.sizes().vec(), (std::vector<int64_t>{37, 5, 176}));
      (y * upstream).sum().backward();

      auto xd = doubleLeaf(x), wd = doubleLeaf(w);
      auto bd = withBias ? doubleLeaf(b) : torch::Tensor();
      auto yd = torch::nn::functional::linear(xd, wd, bd);
      (yd * upstream.to(torch::kDouble)).sum().backward();
      QVERIFY(closeToDouble(y.detach(), yd.detach()));
      QVERIFY(closeToDouble(x.grad(), xd.grad()));
      QVERIFY(closeToDouble(w.grad(), wd.grad()));
      if (withBias) QVERIFY(closeToDouble(b.grad(), bd.grad()));
    }
    auto x = torch::randn({4, 8, 32}, torch::requires_grad());
    const auto frozen = torch::randn({16, 32});
    applyLinear(x, frozen).sum().backward();
    QVERIFY(x.grad().defined() && !frozen.grad().defined());
    const auto want = torch::ones({4, 8, 16}).matmul(frozen);
    QVERIFY(torch::allclose(x.grad(), want, 1e-4, 1e-4));
    // A bf16 step's autocast still casts the layers (the oneDNN path would bypass it).
    AutocastScope autocast(true, torch::kCPU);
    QCOMPARE(applyLinear(x, frozen).scalar_type(), torch::kBFloat16);
  }

  // Attention on whichever library computes it here, against LibTorch's operations in double
  // precision: grouped and plain heads, queries from strided views (as the layers make them), a
  // padding-and-causal mask, fewer queries than keys (the last layer, the key/value cache), the
  // three gradients, a frozen key/value (no gradient asked), and the kept probabilities.
  void attentionMatchesDoublePrecision() {
    qInfo("float32 attention: %s", cpuAttentionLibrary().c_str());
    struct Shape {
      int64_t B, nh, nkv, T, S, hs;
    };
    for (const Shape& s : {Shape{3, 4, 2, 11, 11, 8}, Shape{2, 4, 4, 9, 9, 6},
                           Shape{2, 6, 2, 1, 13, 8}, Shape{2, 4, 1, 5, 12, 16}}) {
      const auto split = [&](int64_t heads, int64_t len) {  // (B, heads, len, hs), not contiguous
        return torch::randn({s.B, len, heads * s.hs}).view({s.B, len, heads, s.hs}).transpose(1, 2);
      };
      auto q = split(s.nh, s.T).requires_grad_(), k = split(s.nkv, s.S).requires_grad_(),
           v = split(s.nkv, s.S).requires_grad_();
      // Causal over the last T of S keys, the first key padded out in sample 0.
      auto allowed = torch::ones({s.B, 1, s.T, s.S}, torch::kBool).tril(s.S - s.T);
      allowed.select(0, 0).select(-1, 0).fill_(false);
      const auto mask = torch::zeros({s.B, 1, s.T, s.S}).masked_fill(allowed.logical_not(), -1e30);
      const auto upstream = torch::randn({s.B, s.nh, s.T, s.hs});
      auto y = attention(q, k, v, mask);
      QCOMPARE(y.sizes().vec(), (std::vector<int64_t>{s.B, s.nh, s.T, s.hs}));
      (y * upstream).sum().backward();

      auto qd = doubleLeaf(q), kd = doubleLeaf(k), vd = doubleLeaf(v);
      const int64_t groups = s.nh / s.nkv;
      auto scores = torch::matmul(qd, kd.repeat_interleave(groups, 1).transpose(-2, -1)) /
                        std::sqrt(static_cast<double>(s.hs)) +
                    mask.to(torch::kDouble);
      auto yd = torch::matmul(scores.softmax(-1), vd.repeat_interleave(groups, 1));
      (yd * upstream.to(torch::kDouble)).sum().backward();
      QVERIFY(closeToDouble(y.detach(), yd.detach()));
      QVERIFY(closeToDouble(q.grad(), qd.grad()));
      QVERIFY(closeToDouble(k.grad(), kd.grad()));
      QVERIFY(closeToDouble(v.grad(), vd.grad()));
      QVERIFY(closeToDouble(torchAttention(q, k, v, mask).detach(), yd.detach()));
    }
    auto q = torch::randn({2, 4, 7, 8}, torch::requires_grad());
    const auto k = torch::randn({2, 2, 7, 8}), v = torch::randn({2, 2, 7, 8});
    torch::Tensor probs;
    const auto kept = attention(q, k, v, torch::Tensor(), &probs);
    QCOMPARE(probs.sizes().vec(), (std::vector<int64_t>{2, 4, 7, 7}));
    QVERIFY(torch::allclose(probs.sum(-1), torch::ones({2, 4, 7}), 1e-5, 1e-5));
    const auto y = attention(q, k, v, torch::Tensor());
    QVERIFY(torch::allclose(kept, y, 1e-5, 1e-5));
    y.sum().backward();
    QVERIFY(q.grad().defined() && !k.grad().defined() && !v.grad().defined());
    AutocastScope autocast(true, torch::kCPU);  // a bf16 step keeps LibTorch's attention
    QCOMPARE(attention(q.to(torch::kBFloat16), k.to(torch::kBFloat16), v.to(torch::kBFloat16),
                       torch::Tensor())
                 .scalar_type(),
             torch::kBFloat16);
  }

  void gradientsReachTheVisionEncoder() {
    auto c = tinyMllmConfig();
    Mllm m(c);
    randomise(*m);
    auto ids = torch::randint(5, 40, {2, 20});
    ids.narrow(1, 1, 16).fill_(3);
    auto labels = torch::full({2, 20}, -100, torch::kInt64);
    labels.narrow(1, 17, 3).copy_(torch::randint(5, 40, {2, 3}));
    MllmInputs in{torch::randn({2, 3, 16, 16}), ids, torch::ones({2, 20}, torch::kInt64), labels,
                  torch::full({2}, 17, torch::kInt64)};
    sequenceLogProbs(m->forward(in), labels).sum().backward();
    auto params = m->named_parameters();
    for (const char* name : {"vision_tower.embeddings.patch_embedding.weight",
                             "vision_tower.encoder.layers.0.self_attn.q_proj.weight",
                             "vision_tower.encoder.layers.1.mlp.fc2.weight",
                             "multi_modal_projector.linear_1.weight"}) {
      auto grad = params[name].grad();
      QVERIFY2(grad.defined() && grad.abs().sum().item<double>() > 0, name);
    }
    // Penultimate-layer features: the top layer is never used, so it gets no gradient.
    QVERIFY(!params["vision_tower.encoder.layers.2.mlp.fc2.weight"].grad().defined());
  }

  // Rows may hold no image or several: the images fill the placeholder runs in order, a text-only
  // batch never runs the vision tower, and rows that repeat the images (DPO) share one encoding.
  void rowsWithNoImageOrSeveralImages() {
    auto c = tinyMllmConfig();
    c.prefix_bidirectional = false;
    Mllm m(c);
    randomise(*m);
    m->eval();
    torch::NoGradGuard g;
    const int64_t T = 40, N = 16;
    auto ones = [&](int64_t rows) { return torch::ones({rows, T}, torch::kInt64); };
    auto none = [&](int64_t rows) { return torch::full({rows, T}, -100, torch::kInt64); };
    auto prefix = [&](int64_t rows) { return torch::full({rows}, 0, torch::kInt64); };

    // Text only: the language model on the token embeddings, whatever the vision tower holds.
    const auto text = torch::randint(5, 40, {1, T});
    const auto plain =
        m->forward({torch::empty({0, 3, 16, 16}), text, ones(1), none(1), prefix(1)});
    QVERIFY(torch::allclose(
        plain, m->language_model->forwardEmbeds(m->language_model->embed(text), ones(1), {})));

    // Row 0 shows images A then B, row 1 image C.
    auto ids = torch::randint(5, 40, {2, T});
    ids[0].narrow(0, 2, N).fill_(3);
    ids[0].narrow(0, 20, N).fill_(3);
    ids[1].narrow(0, 5, N).fill_(3);
    const auto A = torch::randn({1, 3, 16, 16}), B = torch::randn({1, 3, 16, 16}),
               C = torch::randn({1, 3, 16, 16});
    const auto abc = torch::cat({A, B, C});
    const auto logits = m->forward({abc, ids, ones(2), none(2), prefix(2)});
    // Image order matters: B at the first placeholder run changes row 0 from there on only.
    const auto bac = m->forward({torch::cat({B, A, C}), ids, ones(2), none(2), prefix(2)});
    QVERIFY(torch::allclose(logits.narrow(1, 0, 2), bac.narrow(1, 0, 2)));
    QVERIFY(!torch::allclose(logits[0], bac[0]));
    QVERIFY(torch::allclose(logits[1], bac[1]));
    // The same rows twice over (chosen, then rejected) with the images once: tiled, as if given
    // twice.
    const auto twice = torch::cat({ids, ids});
    const auto shared = m->forward({abc, twice, ones(4), none(4), prefix(4)});
    const auto given = m->forward({torch::cat({abc, abc}), twice, ones(4), none(4), prefix(4)});
    QVERIFY(torch::allclose(shared, given));
    QVERIFY(torch::allclose(shared.narrow(0, 0, 2), logits, 1e-5, 1e-5));
    // Placeholders that no whole number of copies of the images fills are an error.
    bool threw = false;
    try {
      m->forward({torch::cat({A, B}), ids, ones(2), none(2), prefix(2)});
    } catch (const c10::Error& e) {
      threw = QString(e.what()).contains("not a whole number of copies");
    }
    QVERIFY(threw);
  }

  // Decoding with the key/value cache gives, token for token, what recomputing the whole sequence
  // every step gives: greedy, a batch of left-padded prompts of different lengths with an image
  // each, causal and prefix-bidirectional models; rows stop at their stop token.
  void cachedDecodingEqualsRecomputation() {
    for (bool prefix : {false, true}) {
      auto c = tinyMllmConfig();
      c.prefix_bidirectional = prefix;
      Mllm m(c);
      randomise(*m);
      const int64_t N = 16, T = 24;
      auto ids = torch::randint(5, 40, {2, T});
      auto mask = torch::ones({2, T}, torch::kInt64);
      mask[1].narrow(0, 0, 3).fill_(0);  // row 1 is 3 tokens shorter: left padding
      ids[1].narrow(0, 0, 3).fill_(0);
      ids[0].narrow(0, 2, N).fill_(3);
      ids[1].narrow(0, 5, N).fill_(3);
      MllmInputs prompt{torch::randn({2, 3, 16, 16}), ids, mask, torch::Tensor(), torch::Tensor()};
      GenerationOptions o;
      o.maxNewTokens = 12;
      const auto cached = generate(m, prompt, o);
      o.useCache = false;
      const auto recomputed = generate(m, prompt, o);
      QVERIFY2(torch::equal(cached.ids, recomputed.ids),
               qPrintable(QString("prefix %1").arg(prefix)));
      QCOMPARE(cached.ids.sizes().vec(), (std::vector<int64_t>{2, 12}));
      // A stop token ends its row: the rest of the row is padding, the other row goes on.
      o.useCache = true;
      o.stopIds = {cached.ids[0][4].item<int64_t>()};
      o.padId = 1;
      const auto stopped = generate(m, prompt, o);
      QVERIFY(stopped.stopped[0]);
      const int64_t firstStop = stopped.lengths[0];
      QVERIFY(firstStop <= 5);
      QCOMPARE(stopped.ids[0][firstStop - 1].item<int64_t>(), o.stopIds[0]);
      if (firstStop < stopped.ids.size(1))
        QCOMPARE(stopped.ids[0][firstStop].item<int64_t>(), int64_t{1});
    }
  }

  // Sampling: seeded (the same seed, the same tokens), top-k 1 and a tiny top-p are greedy, and
  // top-k never picks outside the k best.
  void samplingIsSeededAndTruncated() {
    const auto logits = torch::tensor({{0.1f, 2.0f, 1.9f, -1.0f, 0.5f}});
    GenerationOptions o;
    o.temperature = 1.0;
    auto g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7);
    std::vector<int64_t> a, b;
    for (int i = 0; i < 50; ++i) {
      a.push_back(pickNextTokens(logits, o, g1).item<int64_t>());
      b.push_back(pickNextTokens(logits, o, g2).item<int64_t>());
    }
    QCOMPARE(a, b);
    QVERIFY(std::set<int64_t>(a.begin(), a.end()).size() > 1);  // it does sample
    o.topK = 2;
    for (int i = 0; i < 50; ++i) {
      const auto t = pickNextTokens(logits, o, g1).item<int64_t>();
      QVERIFY(t == 1 || t == 2);
    }
    o.topK = 1;
    QCOMPARE(pickNextTokens(logits, o, g1).item<int64_t>(), int64_t{1});
    o.topK = 0;
    o.topP = 0.01;
    for (int i = 0; i < 10; ++i)
      QCOMPARE(pickNextTokens(logits, o, g1).item<int64_t>(), int64_t{1});
  }

  void logitsFromSkipsOnlyUnreadPositions() {
    // The last layer computes only positions >= logitsFrom; those logits must equal the full pass.
    LmConfig c = tinyMllmConfig().text;
    CausalLM lm(c);
    randomise(*lm);
    auto embeds = torch::randn({2, 12, 32});
    auto mask = torch::ones({2, 12}, torch::kInt64);
    mask[1].narrow(0, 10, 2).fill_(0);  // right padding in row 1
    auto prefix = torch::tensor({8, 9}, torch::kInt64);
    auto full = lm->forwardEmbeds(embeds, mask, {}, prefix);
    auto tail = lm->forwardEmbeds(embeds, mask, {}, prefix, /*logitsFrom=*/7);
    QCOMPARE(tail.sizes().vec(), (std::vector<int64_t>{2, 5, 40}));
    QVERIFY(torch::allclose(full.narrow(1, 7, 5), tail, 1e-5, 1e-5));
  }

  void sequenceLogProbsSumOnlyLabelledTokens() {
    auto logits = torch::randn({1, 4, 5});
    auto labels = torch::tensor({{-100, 2, 4, -100}}, torch::kInt64);
    auto lp = torch::log_softmax(logits, -1);
    const double expected = lp[0][1][2].item<double>() + lp[0][2][4].item<double>();
    QVERIFY(std::abs(sequenceLogProbs(logits, labels).item<double>() - expected) < 1e-6);
  }
};

QTEST_GUILESS_MAIN(TestModels)
#include "test_models.moc"
