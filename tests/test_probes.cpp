// Probes: logistic regression at its optimum (the gradient condition, by hand), C chosen on the
// validation split, the patch-label reduction, and the segmentation probe on separable features.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include "training/probes.h"

using namespace pivot;

class TestProbes : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void logisticRegressionSatisfiesItsOptimalityCondition() {
    // At the minimum of C * sum CE + 0.5 ||W||^2:  C * (P - Y)^T X + W = 0  and  sum_i (P - Y) = 0.
    torch::manual_seed(0);
    auto x = torch::randn({60, 5});
    auto y = torch::randint(0, 3, {60});
    LogisticRegression lr;
    const double C = 0.316;
    lr.fit(x, y, 3, C);
    auto xd = x.to(torch::kFloat64);
    auto p = torch::softmax(
        torch::matmul(xd, lr.weight.to(torch::kFloat64).t()) + lr.bias.to(torch::kFloat64), 1);
    auto onehot = torch::one_hot(y, 3).to(torch::kFloat64);
    auto gradW = C * torch::matmul((p - onehot).t(), xd) + lr.weight.to(torch::kFloat64);
    auto gradB = C * (p - onehot).sum(0);
    QVERIFY2(gradW.abs().max().item<double>() < 1e-3,
             qPrintable(QString::number(gradW.abs().max().item<double>())));
    QVERIFY(gradB.abs().max().item<double>() < 1e-3);
    // Stronger regularisation (smaller C) gives a smaller weight norm.
    LogisticRegression strong;
    strong.fit(x, y, 3, 0.01);
    QVERIFY(strong.weight.norm().item<double>() < lr.weight.norm().item<double>());
  }

  void separableClassesAndCChosenOnValidation() {
    torch::manual_seed(1);
    auto centres = torch::tensor({{4.0, 0.0}, {-4.0, 0.0}, {0.0, 4.0}});
    auto make = [&](int n) {
      auto y = torch::arange(n) % 3;
      return std::pair{centres.index_select(0, y) + 0.3 * torch::randn({n, 2}), y};
    };
    auto [tx, ty] = make(90);
    auto [vx, vy] = make(30);
    auto [sx, sy] = make(30);
    const auto r = linearProbe(tx, ty, vx, vy, sx, sy, 3);
    QCOMPARE(r.valByC.size(), kProbeCGrid.size());
    QCOMPARE(r.testAccuracy, 1.0);
    const auto best =
        std::max_element(r.valByC.begin(), r.valByC.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    QCOMPARE(r.bestC, best->first);  // the first C with the best validation accuracy
    QCOMPARE(r.valAccuracy, best->second);
  }

  void pooledFeaturesAreUnitLength() {
    auto f = pooledFeatures(torch::randn({4, 9, 6}));
    QVERIFY(torch::allclose(f.norm(2, 1), torch::ones({4}), 1e-5, 1e-6));
  }

  void patchLabelsTakeTheMajorityClass() {
    // 4 x 4 mask, 2 x 2 grid: cell 0 has three 5s and one 0; cell 1 a tie between 2 and 7.
    std::vector<uint8_t> mask = {5, 5, 2, 7, 5, 0, 7, 2, 0, 0, 9, 9, 0, 1, 9, 0};
    QCOMPARE(patchLabels(mask, 4, 2), (std::vector<int64_t>{5, 2, 0, 9}));
  }

  // CKA: 1 with itself and under a rotation plus scaling; (Xc^T Yc)^2 / ... by hand for one
  // dimension, where it is the squared correlation; near 0 for independent noise.
  void linearCkaMatchesItsDefinition() {
    torch::manual_seed(3);
    const auto x = torch::randn({500, 8}, torch::kFloat64);
    QVERIFY(std::abs(linearCka(x, x) - 1) < 1e-12);
    const auto q = std::get<0>(torch::linalg_qr(torch::randn({8, 8}, torch::kFloat64)));
    QVERIFY(std::abs(linearCka(x, 3.0 * x.mm(q) + 2.0) - 1) < 1e-10);
    const auto a = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kFloat64).view({4, 1});
    const auto b = torch::tensor({1.0, 3.0, 2.0, 5.0}, torch::kFloat64).view({4, 1});
    // Centred: a (-1.5, -0.5, 0.5, 1.5), b (-1.75, 0.25, -0.75, 2.25): ab = 5.5, aa = 5, bb = 8.75.
    QVERIFY(std::abs(linearCka(a, b) - 5.5 * 5.5 / (5 * 8.75)) < 1e-12);
    QVERIFY(linearCka(x, torch::randn({500, 8}, torch::kFloat64)) < 0.05);
  }

  void segmentationProbeOnSeparableFeatures() {
    torch::manual_seed(2);
    auto labels = torch::randint(0, 3, {40, 16});
    auto prototypes = torch::eye(3) * 5;
    auto features = prototypes.index_select(0, labels.reshape(-1)).view({40, 16, 3}) +
                    0.1 * torch::randn({40, 16, 3});
    const auto r = segmentationProbe(features.narrow(0, 0, 30), labels.narrow(0, 0, 30),
                                     features.narrow(0, 30, 10), labels.narrow(0, 30, 10), 3,
                                     /*seed=*/0, /*epochs=*/40, /*lr=*/1e-2);
    QVERIFY2(r.macroRecall > 0.99, qPrintable(QString::number(r.macroRecall)));
    QVERIFY(r.meanIoU > 0.98);
    QVERIFY_EXCEPTION_THROWN(probeTaskClasses("texture", WorldConfig{}), std::runtime_error);
  }
};

QTEST_GUILESS_MAIN(TestProbes)
#include "test_probes.moc"
