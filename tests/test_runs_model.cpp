// The window's one runs model and the proxies its views look through: the table (sort, filter),
// the tree of experiments and chains, Inspect's checklist and the launch panel's parent picker.
// Each is checked by Qt's own model tester (QAbstractItemModelTester) while polls change, add and
// remove runs, and against the shape a person expects.
#include <QtTest/QtTest>

#include <QAbstractItemModelTester>
#include <QComboBox>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QTreeView>

#include "config/train_config.h"
#include "launch_panel.h"
#include "runs_browser.h"
#include "runs_model.h"

using namespace pivot;

namespace {

RunSummary run(int64_t id, const std::string& stage, std::optional<int64_t> parent = {},
               RunStatus status = RunStatus::Finished, const std::string& config = "{}") {
  RunSummary s;
  s.info.id = id;
  s.info.name = stage + "-" + std::to_string(id);
  s.info.stage = stage;
  s.info.status = status;
  s.info.parentId = parent;
  s.info.configJson = config;
  s.lastStep = 10 * id;
  s.lastLoss = 1.0 / static_cast<double>(id);
  if (status == RunStatus::Finished) s.checkpoints.push_back({s.lastStep, "/ws/x", 0});
  return s;
}

// A study's chain: stage 0 (1) -> align (2) -> instruct (3) -> sft (4), dpo (5); a transplant of
// dpo's encoder: align (6, vision_init 5) -> instruct (7). Then a lone run outside it (8).
std::vector<RunSummary> studyRuns() {
  return {
      run(1, "pretrain"),    run(2, "align", 1),
      run(3, "instruct", 2), run(4, "sft", 3),
      run(5, "dpo", 3),      run(6, "align", {}, RunStatus::Finished, R"({"vision_init": "5"})"),
      run(7, "instruct", 6), run(8, "dpo", {}, RunStatus::Running)};
}

ExperimentInfo study(int64_t id, std::vector<int64_t> runs) {
  ExperimentInfo e;
  e.id = id;
  e.name = "experiment-" + std::to_string(id);
  e.status = RunStatus::Finished;
  e.runIds = std::move(runs);
  return e;
}

// The tree's rows as "stage(id)" nested with brackets, e.g. "experiment(1)[pretrain(1)[...]]".
QString shape(const QAbstractItemModel& m, const QModelIndex& parent = {}) {
  QStringList rows;
  for (int r = 0; r < m.rowCount(parent); ++r) {
    const auto index = m.index(r, 0, parent);
    QString row = m.index(r, RunsTree::StageColumn, parent).data().toString() + "(" +
                  m.index(r, RunsTree::IdColumn, parent).data().toString() + ")";
    if (m.rowCount(index) > 0) row += "[" + shape(m, index) + "]";
    rows << row;
  }
  return rows.join(",");
}

}  // namespace

class TestRunsModel : public QObject {
  Q_OBJECT
 private Q_SLOTS:
  void pollsChangeRowsInPlace() {
    RunsModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QSignalSpy inserted(&model, &RunsModel::rowsInserted);
    QSignalSpy removed(&model, &RunsModel::rowsRemoved);
    QSignalSpy changed(&model, &RunsModel::dataChanged);
    auto runs = studyRuns();
    model.setRuns(runs);
    QCOMPARE(model.rowCount(), 8);
    QCOMPARE(model.index(4, RunsModel::Name).data().toString(), QString("dpo-5"));
    QCOMPARE(model.index(4, RunsModel::Parent).data().toString(), QString("3"));
    QCOMPARE(model.index(0, RunsModel::Parent).data().toString(), QString("-"));
    QCOMPARE(model.index(7, RunsModel::Status).data().toString(), QString("running"));
    QCOMPARE(model.index(7, RunsModel::Status).data(Qt::ForegroundRole).value<QColor>(),
             QColor("#1e8449"));
    QCOMPARE(model.index(1, RunsModel::Loss).data(RunsModel::SortRole).toDouble(), 0.5);
    // The same poll again changes nothing; a live run's new step changes its row only.
    inserted.clear();
    changed.clear();
    model.setRuns(runs);
    QCOMPARE(inserted.count() + removed.count() + changed.count(), 0);
    runs[7].lastStep = 99;
    model.setRuns(runs);
    QCOMPARE(changed.count(), 1);
    QCOMPARE(changed.front().at(0).toModelIndex().row(), 7);
    // A deleted run's row goes, a new one is inserted in id order.
    runs.erase(runs.begin() + 2);
    runs.push_back(run(9, "sft"));
    model.setRuns(runs);
    QCOMPARE(removed.count(), 1);
    QCOMPARE(model.rowCount(), 8);
    QCOMPARE(model.rowOf(3), -1);
    QCOMPARE(model.rowOf(9), 7);
    QVERIFY(!model.run(3));
  }

  void renamingAsksForTheRenameAndShowsIt() {
    RunsModel model;
    model.setRuns(studyRuns());
    QSignalSpy asked(&model, &RunsModel::renameRequested);
    QVERIFY(model.flags(model.index(0, RunsModel::Name)) & Qt::ItemIsEditable);
    QVERIFY(!(model.flags(model.index(0, RunsModel::Stage)) & Qt::ItemIsEditable));
    QVERIFY(model.setData(model.index(0, RunsModel::Name), "  encoder  ", Qt::EditRole));
    QCOMPARE(asked.count(), 1);
    QCOMPARE(asked.front().at(0).value<int64_t>(), int64_t(1));
    QCOMPARE(asked.front().at(1).toString(), QString("encoder"));
    QCOMPARE(model.index(0, RunsModel::Name).data().toString(), QString("encoder"));
    QVERIFY(!model.setData(model.index(0, RunsModel::Name), " ", Qt::EditRole));  // no empty name
  }

  // The tree: the experiment's chain with the transplant under the encoder it took, the run of no
  // experiment at the top; a run reused by two experiments shows under each.
  void treeShowsExperimentsAndChains() {
    RunsModel model;
    RunsTree tree(&model);
    QAbstractItemModelTester tester(&tree, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QCOMPARE(tree.rowCount(), 0);
    model.setRuns(studyRuns(), {study(1, {1, 2, 3, 4, 5, 6, 7})});
    QCOMPARE(shape(tree),
             QString("experiment(1)[pretrain(1)[align(2)[instruct(3)[sft(4),dpo(5)[align(6)["
                     "instruct(7)]]]]]],dpo(8)"));
    const auto experiment = tree.index(0, 0);
    QCOMPARE(tree.experimentAt(experiment), int64_t(1));
    QCOMPARE(tree.index(0, RunsTree::StepsColumn).data().toString(), QString("7 runs"));
    QVERIFY(!tree.mapToSource(experiment).isValid());
    // A run's row maps to the runs model and back.
    const auto stage0 = tree.index(0, RunsTree::RunColumn, experiment);
    QCOMPARE(tree.mapToSource(stage0), model.index(0, RunsModel::Name));
    QCOMPARE(tree.mapFromSource(model.index(0, RunsModel::Name)), stage0);
    QCOMPARE(stage0.data(RunsModel::RunIdRole).toLongLong(), 1LL);
    // Outside any experiment, runs hang under their parents.
    model.setRuns(studyRuns(), {});
    QCOMPARE(shape(tree),
             QString("pretrain(1)[align(2)[instruct(3)[sft(4),dpo(5)[align(6)[instruct(7)]]]]],"
                     "dpo(8)"));
    // Two experiments sharing stage 0/1 (the second reused them).
    model.setRuns(studyRuns(), {study(1, {1, 2, 3, 4}), study(2, {1, 2, 3, 5})});
    QCOMPARE(shape(tree), QString("experiment(1)[pretrain(1)[align(2)[instruct(3)[sft(4)]]]],"
                                  "experiment(2)[pretrain(1)[align(2)[instruct(3)[dpo(5)]]]],"
                                  "align(6)[instruct(7)],dpo(8)"));
  }

  // A poll that changes no shape updates rows in place (the view keeps what is open); one that
  // adds a run resets the tree, and the browser opens every row but those the user closed.
  void browserKeepsTreeRowsClosedAndFollowsTheSelection() {
    RunsModel model;
    RunsBrowser browser(&model);
    auto runs = studyRuns();
    model.setRuns(runs, {study(1, {1, 2, 3, 4, 5, 6, 7})});
    QCOMPARE(browser.rowCount(), 8);
    auto* tree = browser.tree();
    auto* treeModel = browser.treeModel();
    const auto experiment = treeModel->index(0, 0);
    const auto stage0 = treeModel->index(0, 0, experiment);
    QVERIFY(tree->isExpanded(experiment) && tree->isExpanded(stage0));
    tree->collapse(stage0);
    QSignalSpy reset(treeModel, &QAbstractItemModel::modelReset);
    runs[7].lastStep = 123;  // a live run's step: same shape
    model.setRuns(runs, {study(1, {1, 2, 3, 4, 5, 6, 7})});
    QCOMPARE(reset.count(), 0);
    QCOMPARE(treeModel->index(1, RunsTree::StepsColumn).data().toString(), QString("123"));
    runs.push_back(run(9, "sft", 3));  // a new run: the shape changes
    model.setRuns(runs, {study(1, {1, 2, 3, 4, 5, 6, 7, 9})});
    QCOMPARE(reset.count(), 1);
    const auto experimentAgain = treeModel->index(0, 0);
    QVERIFY(tree->isExpanded(experimentAgain));
    QVERIFY(!tree->isExpanded(treeModel->index(0, 0, experimentAgain)));  // still closed
    // Selecting in the tree selects in the table (which the window follows), and back.
    QSignalSpy selected(&browser, &RunsBrowser::selectionChanged);
    browser.selectRuns({5, 8});
    QCOMPARE(browser.selectedRunIds(), (QList<int64_t>{5, 8}));
    QCOMPARE(tree->selectionModel()->selectedRows().size(), 2);
    tree->selectionModel()->select(treeModel->index(1, 0),
                                   QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
    QCOMPARE(browser.selectedRunIds(), (QList<int64_t>{8}));
    QVERIFY(selected.count() >= 2);
    // Double-clicking an experiment's row asks for its report.
    browser.showTree();
    browser.resize(900, 500);
    browser.show();
    QVERIFY(QTest::qWaitForWindowExposed(&browser));
    QSignalSpy activated(&browser, &RunsBrowser::experimentActivated);
    const QPoint at = tree->visualRect(treeModel->index(0, RunsTree::StageColumn)).center();
    QTest::mouseClick(tree->viewport(), Qt::LeftButton, {}, at);
    QCOMPARE(browser.selectedRunIds(), (QList<int64_t>{8}));  // the runs shown stay
    QTest::mouseDClick(tree->viewport(), Qt::LeftButton, {}, at);
    QCOMPARE(activated.count(), 1);
    QCOMPARE(activated.front().at(0).value<int64_t>(), int64_t(1));
    // Filtering the table leaves the tree whole.
    browser.setFilterText("dpo");
    QCOMPARE(browser.rowCount(), 2);
    QCOMPARE(treeModel->rowCount(), 2);
  }

  // Inspect's checklist: runs with checkpoints, check marks kept across polls by run id.
  void checklistKeepsItsChecksAcrossPolls() {
    RunsModel model;
    RunsFilter checklist(&model, [](const RunSummary& r) { return !r.checkpoints.empty(); });
    checklist.setCheckable(true);
    checklist.setLabel(
        [](const RunSummary& r) { return QString::fromStdString(r.info.name) + "!"; });
    QAbstractItemModelTester tester(&checklist,
                                    QAbstractItemModelTester::FailureReportingMode::QtTest);
    auto runs = studyRuns();
    model.setRuns(runs);
    QCOMPARE(checklist.rowCount(), 7);  // the running run 8 has no checkpoint yet
    QSignalSpy checks(&checklist, &RunsFilter::checkedRunsChanged);
    QVERIFY(checklist.flags(checklist.index(1, RunsModel::Name)) & Qt::ItemIsUserCheckable);
    QVERIFY(
        checklist.setData(checklist.index(4, RunsModel::Name), Qt::Checked, Qt::CheckStateRole));
    QCOMPARE(checks.count(), 1);
    QCOMPARE(checklist.checkedRuns(), (QList<int64_t>{5}));
    QCOMPARE(checklist.index(4, RunsModel::Name).data().toString(), QString("dpo-5!"));
    // Run 8 gets its first checkpoint and a run before it goes: the check stays on run 5.
    runs[7].checkpoints.push_back({80, "/ws/y", 0});
    runs.erase(runs.begin());
    model.setRuns(runs);
    QCOMPARE(checklist.rowCount(), 7);
    QCOMPARE(checklist.checkedRuns(), (QList<int64_t>{5}));
    QCOMPARE(checklist.index(3, RunsModel::Name).data(Qt::CheckStateRole).toInt(),
             int(Qt::Checked));
    checklist.setCheckedRuns({8, 2});
    QCOMPARE(checklist.checkedRuns(), (QList<int64_t>{2, 8}));  // in row order
  }

  // The launch panel's parent picker: "none" first, then the finished and stopped runs; the
  // chosen parent stays chosen while polls add runs before it.
  void parentPickerOffersFinishedRuns() {
    RunsModel model;
    LaunchPanel panel;
    panel.setRunsModel(&model);
    auto* box = panel.parentBox();
    QCOMPARE(box->count(), 1);
    QVERIFY(box->itemText(0).startsWith("none"));
    auto runs = studyRuns();
    runs[3].info.status = RunStatus::Stopped;
    runs[4].info.status = RunStatus::Failed;
    model.setRuns(runs);
    QCOMPARE(box->count(), 1 + 6);  // runs 1, 2, 3, 4 (stopped), 6, 7; not failed 5, running 8
    QCOMPARE(box->itemText(4), QString("sft-4 (sft, )"));
    box->setCurrentIndex(6);
    QCOMPARE(box->currentData(RunsModel::RunIdRole).toLongLong(), 7LL);
    runs[4].info.status = RunStatus::Finished;  // run 5 finishes: a row before the chosen one
    model.setRuns(runs);
    QCOMPARE(box->count(), 1 + 7);
    QCOMPARE(box->currentData(RunsModel::RunIdRole).toLongLong(), 7LL);
    QVERIFY(!box->itemData(0, RunsModel::RunIdRole).isValid());
  }

  // The stage box is filled from the Stage name table: every stage, in order, DPO chosen.
  void stageBoxListsEveryStage() {
    LaunchPanel panel;
    auto* box = panel.stageBox();
    QCOMPARE(box->count(), static_cast<int>(allStages().size()));
    for (int i = 0; i < box->count(); ++i)
      QCOMPARE(box->itemData(i).toString(),
               QString(stageName(allStages()[static_cast<size_t>(i)])));
    QCOMPARE(box->currentData().toString(), QString("dpo"));
    QVERIFY2(box->itemText(0).startsWith("pretrain (0:"), qPrintable(box->itemText(0)));
  }
};

QTEST_MAIN(TestRunsModel)
#include "test_runs_model.moc"
