// Losses and schedule against values computed by hand.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <cmath>

#include "text/hf_tokenizer.h"
#include "training/batches.h"
#include "training/encoder_pretrain.h"
#include "training/losses.h"
#include "training/rewards.h"
#include "training/schedule.h"

using namespace pivot;

namespace {
double logSigmoid(double x) { return -std::log1p(std::exp(-x)); }
bool near(double a, double b, double tol = 1e-6) { return std::abs(a - b) < tol; }
}  // namespace

class TestLosses : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  // GRPO's verifiable rewards on ShapesWorld's answer kinds and on real data's, by hand.
  void verifiableRewards() {
    QCOMPARE(accuracyReward("red", "red"), 1.0);
    QCOMPARE(accuracyReward(" Red. ", "red"), 1.0);
    QCOMPARE(accuracyReward("blue", "red"), 0.0);
    QCOMPARE(accuracyReward("2", "two"), 1.0);  // counts as words or digits
    QCOMPARE(accuracyReward("three", "3"), 1.0);
    QCOMPARE(accuracyReward("Yes!", "yes"), 1.0);
    QCOMPARE(accuracyReward("left of it", "left"), 0.0);  // the answer, not a sentence with it
    QCOMPARE(accuracyReward("<think>two circles, one square</think><answer>three</answer>", "3"),
             1.0);
    QCOMPARE(accuracyReward("The answer is B.", "B"), 1.0);
    QCOMPARE(accuracyReward("(c)", "C"), 0.0);  // a lower-case letter in parentheses is no choice
    QCOMPARE(accuracyReward("(C) a red circle", "C"), 1.0);
    QCOMPARE(accuracyReward("B", "b"), 1.0);
    QCOMPARE(accuracyReward("I think A or B", "B"), 0.0);
    QCOMPARE(extractChoiceLetter("I think so"), std::string(""));  // "I" is a word, not a choice
    QCOMPARE(extractChoiceLetter("B) a red circle"), std::string("B"));
    QCOMPARE(extractChoiceLetter("the answer is: (d)"), std::string("D"));
    QCOMPARE(extractChoiceLetter("no idea"), std::string(""));

    QCOMPARE(formatReward("red", FormatRule::AnswerAlone), 1.0);
    QCOMPARE(formatReward("a small red circle on the left", FormatRule::AnswerAlone), 0.0);
    QCOMPARE(formatReward("<answer>red</answer>", FormatRule::AnswerAlone), 0.0);
    QCOMPARE(
        formatReward("<think>it is red</think>\n<answer>red</answer>", FormatRule::ThinkAnswer),
        1.0);
    QCOMPARE(formatReward("<answer>red</answer>", FormatRule::ThinkAnswer), 0.0);
    QCOMPARE(formatReward("<think>x</think><answer>red</answer> and more", FormatRule::ThinkAnswer),
             0.0);

    // DAPO's soft overlong punishment, max 20 tokens with a 4-token cache: free up to 16.
    QCOMPARE(lengthPenalty(16, 20, 4), 0.0);
    QCOMPARE(lengthPenalty(18, 20, 4), -0.5);
    QCOMPARE(lengthPenalty(20, 20, 4), -1.0);
    QCOMPARE(lengthPenalty(25, 20, 4), -1.0);
  }

  // GRPO's group-relative advantages, by hand: rewards (1, 0, 0, 1 | 2, 2, 2, 2), G = 4. Group 1:
  // mean 0.5, sample std sqrt(1/3); group 2 has std 0 and teaches nothing. Batch std: mean 1.25,
  // sum of squares 5.5, std sqrt(5.5 / 7).
  void grpoAdvantagesByHand() {
    const auto rewards = torch::tensor({1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0}, torch::kFloat64);
    const double g = std::sqrt(1.0 / 3), b = std::sqrt(5.5 / 7);
    const auto group = groupAdvantages(rewards, 4, RewardScaling::Group);
    const auto expectGroup = torch::tensor({0.5 / (g + 1e-4), -0.5 / (g + 1e-4), -0.5 / (g + 1e-4),
                                            0.5 / (g + 1e-4), 0.0, 0.0, 0.0, 0.0},
                                           torch::kFloat64);
    QVERIFY(torch::allclose(group.advantages, expectGroup, 0, 1e-12));
    QCOMPARE(group.fracZeroStd, 0.5);
    QVERIFY(std::abs(group.groupStd[0].item<double>() - g) < 1e-12);
    const auto batch = groupAdvantages(rewards, 4, RewardScaling::Batch);
    QVERIFY(std::abs(batch.advantages[0].item<double>() - 0.5 / (b + 1e-4)) < 1e-12);
    QCOMPARE(batch.advantages[5].item<double>(), 0.0);
    QCOMPARE(batch.fracZeroStd, 0.0);
    const auto none = groupAdvantages(rewards, 4, RewardScaling::None);
    QVERIFY(torch::allclose(
        none.advantages,
        torch::tensor({0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0}, torch::kFloat64)));
  }

  // The clipped surrogate, clip ratios, k3 KL and the four aggregations, by hand. Two completions,
  // A = +1 and -1, mask (1 1 1 | 1 1 0), ratios (1.0 1.3 0.7 | 0.7 1.1 5.0), epsilon 0.2:
  //   row 0: -min(r, clip r) = -1, -1.2, -0.7        (1.3 clipped high; 0.7 not: A > 0)
  //   row 1: -min(-r, -clip r) = 0.8, 1.1, (masked)  (0.7 clipped low)
  // grpo ((-2.9 / 3) + (1.9 / 2)) / 2, bnpo -1.0 / 5, dr_grpo -1.0 / (2 x 4), dapo -1.0 / 10;
  // clipped low 1/5, high 1/5, region 2/5.
  void grpoLossByHand() {
    const auto old = torch::zeros({2, 3}, torch::kFloat64);
    const auto logps =
        torch::log(torch::tensor({{1.0, 1.3, 0.7}, {0.7, 1.1, 5.0}}, torch::kFloat64));
    const auto advantages = torch::tensor({1.0, -1.0}, torch::kFloat64);
    const auto mask = torch::tensor({{1, 1, 1}, {1, 1, 0}});
    GrpoSettings s;
    s.maxCompletionLength = 4;
    auto lossOf = [&](GrpoLoss type, double items = 0) {
      s.lossType = type;
      s.itemsInBatch = items;
      return grpoLoss(logps, old, torch::Tensor(), advantages, mask, s);
    };
    QVERIFY(std::abs(lossOf(GrpoLoss::Grpo).loss.item<double>() - (-2.9 / 3 + 1.9 / 2) / 2) <
            1e-12);
    QVERIFY(std::abs(lossOf(GrpoLoss::Bnpo).loss.item<double>() - (-0.2)) < 1e-12);
    QVERIFY(std::abs(lossOf(GrpoLoss::DrGrpo).loss.item<double>() - (-0.125)) < 1e-12);
    QVERIFY(std::abs(lossOf(GrpoLoss::Dapo, 10).loss.item<double>() - (-0.1)) < 1e-12);
    QVERIFY(std::abs(lossOf(GrpoLoss::Dapo).loss.item<double>() - (-0.2)) < 1e-12);  // = bnpo
    const auto out = lossOf(GrpoLoss::Bnpo);
    QVERIFY(std::abs(out.clipLow - 0.2) < 1e-12);
    QVERIFY(std::abs(out.clipHigh - 0.2) < 1e-12);
    QVERIFY(std::abs(out.clipRegion - 0.4) < 1e-12);
    // k3 KL: the reference differs only at row 0, token 0 by ln 2: 2 - ln 2 - 1 = 0.306853.
    auto ref = logps.clone();
    ref[0][0] += std::log(2.0);
    s.beta = 0.1;
    s.lossType = GrpoLoss::Bnpo;
    s.itemsInBatch = 0;
    const auto withKl = grpoLoss(logps, old, ref, advantages, mask, s);
    const double k3 = 2 - std::log(2.0) - 1;
    QVERIFY(std::abs(withKl.kl - k3 / 5) < 1e-12);
    QVERIFY(std::abs(withKl.loss.item<double>() - (-1.0 + 0.1 * k3) / 5) < 1e-12);
    // One update per generation batch: the old log-probs are the current ones, every ratio 1.
    s.beta = 0;
    s.lossType = GrpoLoss::Grpo;
    QVERIFY(std::abs(grpoLoss(logps, torch::Tensor(), torch::Tensor(), advantages, mask, s)
                         .loss.item<double>()) < 1e-12);
    // The gradient flows through the unclipped tokens only.
    auto trainable = logps.clone().requires_grad_(true);
    s.lossType = GrpoLoss::Bnpo;
    grpoLoss(trainable, old, torch::Tensor(), advantages, mask, s).loss.backward();
    const auto grad = trainable.grad();
    QCOMPARE(grad[0][1].item<double>(), 0.0);                           // clipped high
    QCOMPARE(grad[1][0].item<double>(), 0.0);                           // clipped low
    QVERIFY(std::abs(grad[0][0].item<double>() - (-1.0 / 5)) < 1e-12);  // d(-r A)/dlogp = -r A / 5
  }

  void sftLossAveragesResponseTokensOnly() {
    // Uniform logits over 4 classes: every labelled token costs log 4; ignored ones cost nothing.
    auto logits = torch::zeros({1, 3, 4});
    auto labels = torch::tensor({{-100, 1, 2}}, torch::kInt64);
    QVERIFY(near(sftLoss(logits, labels).item<double>(), std::log(4.0)));
    // One confident token: logits (ln 3, 0, 0, 0) on label 0 -> p = 3/6.
    logits[0][1][0] = std::log(3.0);
    labels = torch::tensor({{-100, 0, -100}}, torch::kInt64);
    QVERIFY(near(sftLoss(logits, labels).item<double>(), -std::log(0.5)));
  }

  void dpoSigmoidMatchesHandComputedValues() {
    auto pc = torch::tensor({-1.0, -2.0}), pr = torch::tensor({-3.0, -1.5});
    auto rc = torch::tensor({-1.5, -2.0}), rr = torch::tensor({-2.5, -2.0});
    const double beta = 0.1;
    // h = (pc - rc) - (pr - rr) = (0.5 - (-0.5), 0 - 0.5) = (1.0, -0.5)
    const double expected = -(logSigmoid(0.1 * 1.0) + logSigmoid(0.1 * -0.5)) / 2;
    auto out = dpoLoss(pc, pr, rc, rr, beta, DpoLoss::Sigmoid);
    QVERIFY(near(out.loss.item<double>(), expected));
    QVERIFY(near(out.chosenRewards[0].item<double>(), 0.05));
    QVERIFY(near(out.chosenRewards[1].item<double>(), 0.0));
    QVERIFY(near(out.rejectedRewards[0].item<double>(), -0.05));
    QVERIFY(near(out.rejectedRewards[1].item<double>(), 0.05));
    // At initialisation (policy == reference) the loss is log 2 whatever beta.
    QVERIFY(
        near(dpoLoss(pc, pr, pc, pr, 0.7, DpoLoss::Sigmoid).loss.item<double>(), std::log(2.0)));
  }

  void dpoVariantsMatchHandComputedValues() {
    auto pc = torch::tensor({-1.0}), pr = torch::tensor({-3.0}), rc = torch::tensor({-1.5}),
         rr = torch::tensor({-2.5});
    const double h = 1.0, beta = 0.5, ls = 0.2;
    QVERIFY(near(dpoLoss(pc, pr, rc, rr, beta, DpoLoss::Hinge).loss.item<double>(),
                 std::max(0.0, 1 - beta * h)));
    QVERIFY(near(dpoLoss(pc, pr, rc, rr, beta, DpoLoss::Ipo).loss.item<double>(),
                 std::pow(h - 1 / (2 * beta), 2)));
    QVERIFY(near(dpoLoss(pc, pr, rc, rr, beta, DpoLoss::Sigmoid, ls).loss.item<double>(),
                 -logSigmoid(beta * h) * (1 - ls) - logSigmoid(-beta * h) * ls));
    QVERIFY(near(dpoLoss(pc, pr, rc, rr, beta, DpoLoss::Robust, ls).loss.item<double>(),
                 (-logSigmoid(beta * h) * (1 - ls) + logSigmoid(-beta * h) * ls) / (1 - 2 * ls)));
    QVERIFY_EXCEPTION_THROWN(dpoLossFromName("kto"), std::runtime_error);
  }

  // MPO's BCO pair term, by hand: chosen reward beta (pc - rc) = 0.5 * 0.5 = 0.25, rejected
  // 0.5 * (-0.5) = -0.25, shifted by the running mean of the batches' mean reward.
  void bcoPairAndItsRunningMeanByHand() {
    RunningMean running;
    QVERIFY(near(running.update(0.3), 0.3, 1e-12));  // the first batch sets it (count 1e-24)
    QVERIFY(near(running.update(0.1), 0.2, 1e-12));
    QVERIFY(near(running.update(0.5), 0.3, 1e-12));
    auto pc = torch::tensor({-1.0}), pr = torch::tensor({-3.0}), rc = torch::tensor({-1.5}),
         rr = torch::tensor({-2.5});
    const double shift = 0.1;
    QVERIFY(near(dpoLoss(pc, pr, rc, rr, 0.5, DpoLoss::BcoPair, 0, shift).loss.item<double>(),
                 -logSigmoid(0.25 - shift) - logSigmoid(-(-0.25 - shift))));
    QVERIFY(near(dpoLoss(pc, pr, rc, rr, 0.5, DpoLoss::BcoPair).loss.item<double>(),
                 -2 * logSigmoid(0.25)));
    QVERIFY_EXCEPTION_THROWN(dpoLoss(pc, pr, rc, rr, 0.5, DpoLoss::Sft), std::invalid_argument);
    QCOMPARE(dpoLossFromName("bco_pair"), DpoLoss::BcoPair);
    QCOMPARE(std::string(name(DpoLoss::Sft)), std::string("sft"));
  }

  void dpoGradientPushesChosenUpAndRejectedDown() {
    auto pc = torch::tensor({-2.0}, torch::requires_grad()),
         pr = torch::tensor({-2.0}, torch::requires_grad());
    dpoLoss(pc, pr, torch::tensor({-2.0}), torch::tensor({-2.0}), 0.1, DpoLoss::Sigmoid)
        .loss.backward();
    QVERIFY(near(pc.grad().item<double>(), -0.05));  // -beta * sigmoid(0) = -0.05
    QVERIFY(near(pr.grad().item<double>(), 0.05));
  }

  // SigLIP: logits = exp(t) img.txt + b with t = log 10, b = -10 at initialisation.
  void siglipLossMatchesHandComputedValues() {
    const auto eye = torch::eye(2);
    const auto scale = torch::full({1}, std::log(10.0)), bias = torch::full({1}, -10.0);
    // Orthonormal pairs: matches score 10 - 10 = 0, non-matches 0 - 10 = -10.
    const double distinct = siglipLoss(eye, eye, scale, bias, eye.to(torch::kBool)).item<double>();
    QVERIFY(near(distinct, -(2 * logSigmoid(0) + 2 * logSigmoid(10)) / 2, 1e-5));
    // Identical captions count as matches: the off-diagonal -10 logits are now positives.
    const double same =
        siglipLoss(eye, eye, scale, bias, torch::ones({2, 2}, torch::kBool)).item<double>();
    QVERIFY(near(same, -(2 * logSigmoid(0) + 2 * logSigmoid(-10)) / 2, 1e-4));
    // A learned scale and bias enter through exp(t) and b: t = 0, b = 0, img = txt = (1, 0), (0.6,
    // 0.8).
    const auto v = torch::tensor({{1.0f, 0.0f}, {0.6f, 0.8f}});
    const double plain =
        siglipLoss(v, v, torch::zeros({1}), torch::zeros({1}), torch::eye(2).to(torch::kBool))
            .item<double>();
    QVERIFY(near(plain, -(logSigmoid(1) + logSigmoid(1) + 2 * logSigmoid(-0.6)) / 2, 1e-5));
  }

  void cosineScheduleWithWarmup() {
    // 100 steps, 10% warmup: 0 at step 0, linear to the peak at step 10, half at the midpoint of
    // the decay.
    QCOMPARE(warmupSteps(100, 0.1), 10);
    QVERIFY(near(learningRateAt(0, 100, 1.0, 0.1), 0.0));
    QVERIFY(near(learningRateAt(5, 100, 1.0, 0.1), 0.5));
    QVERIFY(near(learningRateAt(10, 100, 1.0, 0.1), 1.0));
    QVERIFY(near(learningRateAt(55, 100, 1.0, 0.1), 0.5));
    QVERIFY(near(learningRateAt(100, 100, 1.0, 0.1), 0.0));
    QVERIFY(near(learningRateAt(100, 100, 2.0, 0.1, 0.1), 0.2));
    QVERIFY(near(learningRateAt(0, 10, 3.0, 0.0), 3.0));  // no warmup starts at the peak
  }

  // A real tokenizer's conversation as model input: labels only on the assistant's tokens (each
  // the target of the position before it), padding ignored, the image token expanded in place.
  void chatBatchLabelsOnlyTheAnswer() {
    const HfTokenizer qwen = HfTokenizer::load(PIVOT_SOURCE_DIR "/tests/data/qwen2.5-tokenizer");
    const auto conversation = [](const std::string& answer) {
      return parseChatMessages(R"([{"role": "user", "content": "<image>\nColour?"},
                                   {"role": "assistant", "content": ")" +
                                   answer + R"("}])",
                               "t");
    };
    ImageExpansion images;
    images.tokenId = 151655;
    images.imageTokens = 4;
    std::vector<TokenizedChat> rows;
    for (const char* answer : {"Red.", "It is a dark blue."})
      rows.push_back(
          tokenizeChat(qwen, renderChat(ChatFormat::Qwen25, conversation(answer)), images));
    const auto in = chatBatch(rows, torch::zeros({1, 3, 8, 8}), 151643, torch::kCPU);
    QCOMPARE(in.inputIds.size(0), int64_t{2});
    QCOMPARE(in.inputIds.size(1), static_cast<int64_t>(rows[1].ids.size()));
    for (int64_t b = 0; b < 2; ++b) {
      std::vector<int64_t> targets;
      auto labels = in.labels[b];
      for (int64_t t = 0; t < labels.size(0); ++t)
        if (labels[t].item<int64_t>() != -100) targets.push_back(labels[t].item<int64_t>());
      QCOMPARE(qwen.decode(targets),
               std::string(b == 0 ? "Red.<|im_end|>" : "It is a dark blue.<|im_end|>"));
      QCOMPARE((in.inputIds[b] == 151655).sum().item<int64_t>(), int64_t{4});
    }
    const int64_t shortLength = static_cast<int64_t>(rows[0].ids.size());
    QCOMPARE(in.attentionMask[0].sum().item<int64_t>(), shortLength);
    QCOMPARE(in.inputIds[0][shortLength].item<int64_t>(), int64_t{151643});  // right padding
    QCOMPARE(in.logitsFrom, in.prefixLen.min().item<int64_t>() - 1);
    // The first target sits right after "<|im_start|>assistant\n".
    const int64_t p0 = in.prefixLen[0].item<int64_t>();
    QCOMPARE(qwen.decode({in.inputIds[0][p0 - 1].item<int64_t>()}), std::string("\n"));
    QCOMPARE(in.labels[0][p0 - 1].item<int64_t>(), in.inputIds[0][p0].item<int64_t>());
  }
};

QTEST_GUILESS_MAIN(TestLosses)
#include "test_losses.moc"
