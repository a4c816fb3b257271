// The Encoders view: an experiment's measurements (its report folder's results.csv) as the tables
// of report.md (mean ± std over seeds, DPO − SFT with a 95% interval) and as bar charts with error
// bars, original vs stage 1 vs SFT vs DPO (vs DPO+SFT) side by side; exports PNG, PDF, SVG and CSV.
// Qt and QCustomPlot only; the numbers come from store/results.h, as report.md's do.
#pragma once
#include <QList>
#include <QString>
#include <QWidget>
#include <vector>

#include "results/results_table.h"
#include "store/run_store.h"

class QComboBox;
class QCustomPlot;
class QLabel;
class QTableWidget;

namespace pivot {

class EncodersView : public QWidget {
  Q_OBJECT
 public:
  explicit EncodersView(QWidget* parent = nullptr);

  // The experiments of the workspace; keeps the current one, else shows the newest. An experiment
  // shows its report once it has finished writing it.
  void setExperiments(const std::vector<ExperimentInfo>& experiments);
  // Loads <reportDir>/results.csv; on a bad file the error (naming file and line) shows in the
  // view.
  bool loadReport(const QString& reportDir);
  void showExperiment(int64_t experimentId);  // chooses it in the experiment box
  void setResults(const std::vector<ResultRow>& rows, const QString& title);

  // The chart's file type follows the extension: .png, .pdf or .svg.
  bool exportChart(const QString& path);
  // The current table as CSV: probe, metric, then mean and std per encoder, then DPO - SFT.
  bool exportCsv(const QString& path);

  QTableWidget* table() const { return m_table; }
  QCustomPlot* chart() const { return m_chart; }
  bool resultsShown() const;  // false: only the message (no experiment, or none finished)
  void exportDialog(const QString& kind);  // "PNG", "PDF", "SVG" or "CSV": asks for the file
  QComboBox* familyBox() const { return m_family; }
  QComboBox* sweepBox() const { return m_sweep; }
  QComboBox* experimentBox() const { return m_experiment; }
  int basePointCount() const;  // per-base means drawn as points (several bases only)
  int barSeriesCount() const;
  int errorBarSeriesCount() const;
  // The displacement family's heat map (hidden state x encoder, CKA with the stage-1 encoder):
  // its size, {0, 0} when another family is shown.
  QSize heatMapSize() const;
  bool legendShown() const;    // the bar charts' legend (hidden beside the heat map)
  int cellLabelCount() const;  // the heat map's cells carry their value as text
  QString message() const;

 private:
  void rebuild();  // table + chart for the chosen sweep and family
  void drawChart(const SummaryTable& t);
  bool drawHeatMap(const SummaryTable& t);  // false when the table has no CKA lines
  void onExperimentChosen();

  std::vector<ResultRow> m_rows;
  std::vector<SummaryTable> m_tables;
  std::vector<ExperimentInfo> m_experiments;
  QComboBox* m_experiment = nullptr;
  QComboBox* m_sweep = nullptr;
  QComboBox* m_family = nullptr;
  QTableWidget* m_table = nullptr;
  QCustomPlot* m_chart = nullptr;
  QWidget* m_content = nullptr;  // table and chart, hidden while there are no results
  QLabel* m_message = nullptr;
  QString m_title;
};

}  // namespace pivot
