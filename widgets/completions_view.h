// The Completions view: what a GRPO run actually sampled. Pick a run and one of its logged steps;
// each logged prompt shows its image, question and reference answer, then its G completions with
// every reward function's value, the reward and the group-relative advantage (green above the
// group's mean, red below, stronger the larger). A prompt opens in Inspect (where the run's
// encoder looks on that very sample). Reads the run store's completions table, TRL's
// log_completions; the view never trains or computes.
#pragma once
#include <QImage>
#include <QWidget>
#include <vector>

#include "runs_model.h"
#include "store/run_store.h"

class QComboBox;
class QLabel;
class QPushButton;
class QPainter;
class QTableWidget;

namespace pivot {

class CompletionsView : public QWidget {
  Q_OBJECT
 public:
  // The GRPO runs of the window's runs model are choosable; the newest is shown until one is
  // chosen.
  explicit CompletionsView(RunsModel* runs, QWidget* parent = nullptr);

  void setStorePath(const QString& storePath);  // the workspace's runs.sqlite
  void showRun(int64_t runId);                  // selects it (and its last logged step)

  QComboBox* runBox() const { return m_run; }
  QComboBox* stepBox() const { return m_step; }
  QTableWidget* table() const { return m_table; }
  int promptCount() const { return static_cast<int>(m_prompts.size()); }
  QString message() const;

  // The shown step's completions as a file: .csv (every column, one row a completion) or a figure
  // (.pdf and .svg vector, .png at `dpi`): the run and step on top, each prompt's picture, question
  // and reference beside its completions, rewards and advantages (coloured as on screen). False
  // when nothing is shown or the file cannot be written.
  bool exportCompletions(const QString& path, int dpi = 300) const;
  void exportCompletionsDialog();  // asks for the file

 Q_SIGNALS:
  // Open prompt `index` of `split` (ShapesWorld's) in Inspect with this run's checkpoints.
  void inspectRequested(qint64 runId, int split, qint64 index);
  // A real record's prompt: its image file with the question and reference answer.
  void photoInspectRequested(qint64 runId, const QString& image, const QString& question,
                             const QString& answer);

 protected:
  void resizeEvent(QResizeEvent* event) override;

 private:
  void refreshSteps();
  void fitTextColumns();  // prompt and completion share what the number columns leave
  void refreshTable();
  void openSelectedInInspect();

  QString m_storePath;
  RunsFilter* m_grpoRuns = nullptr;
  bool m_runChosen = false;
  int64_t m_shownLastStep = -1;  // the shown run's last step when its logged steps were read  // by
                                 // the user or showRun; until then the newest run shows
  QComboBox* m_run = nullptr;
  QComboBox* m_step = nullptr;
  QTableWidget* m_table = nullptr;
  QPushButton* m_inspect = nullptr;
  QLabel* m_message = nullptr;
  struct Prompt {
    int firstRow = 0;
    QString sample;  // "train:1234", or a real record's image file
    QString question, reference;
    QImage picture;  // its thumbnail (null when it has none)
  };
  std::vector<Prompt> m_prompts;
  // What the table shows, for its exports.
  std::vector<CompletionRow> m_rows;
  std::vector<std::string> m_functions;  // reward functions, one column each
  QString m_shownTitle;                  // "grpo-5 · step 40"

  bool writeCsv(const QString& path) const;
  void paintFigure(QPainter& painter, double width) const;
  double figureHeight() const;
};

}  // namespace pivot
