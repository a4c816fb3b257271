// The Inspect view: where the vision encoder looks. Pick a ShapesWorld sample (browse the world
// with its masks, question, chosen and rejected answers) or open an image and type a question and
// answer; pick a method, target and layer; see the maps of several runs side by side, with
// localisation scores, at the step one slider chooses. Maps are computed elsewhere (the window's
// explanation worker) and cached here per (checkpoint, sample, method); the view never blocks.
#pragma once
#include <QHash>
#include <QImage>
#include <QMetaType>
#include <QWidget>
#include <cmath>
#include <vector>

#include "data/shapes_world.h"
#include "map_figure.h"
#include "runs_model.h"

class QComboBox;
class QGridLayout;
class QLabel;
class QLineEdit;
class QListView;
class QPushButton;
class QSlider;
class QSpinBox;
class QStackedWidget;

namespace pivot {

struct ExplainJob {
  quint64 id = 0;
  QString checkpointPath, label;
  bool fromWorld = true;  // a ShapesWorld sample, else an image file
  WorldConfig world;
  int split = 1;  // Split
  qint64 index = 0;
  QString imageFile, question, answer;
  QString method = "gradmap", target = "sft", colormap = "jet";
  int layer = -2;
  QString cacheKey() const;
};

struct ExplainOutcome {
  quint64 id = 0;
  QString key, label;
  QImage overlay;             // the map over the image
  QVector<QRgb> colourScale;  // the colormap from 0 to 1 (the figure's colour bar)
  bool scored = false;        // the sample has a target mask
  double mass = NAN;
  bool hit = false;
  QString warning, error;
};

class InspectView : public QWidget {
  Q_OBJECT
 public:
  // The runs with checkpoints are choosable (a checklist over the window's runs model).
  explicit InspectView(RunsModel* runs, QWidget* parent = nullptr);

  void setCheckedRuns(const QList<int64_t>& ids);
  RunsFilter* runChecklist() const { return m_checklist; }
  void setSample(int split, qint64 index);
  void stepSample(int delta);  // the next (+1) or previous (-1) ShapesWorld sample
  int sampleIndex() const;
  // A photo with a typed question and answer (what a real model is explained on).
  void setPhoto(const QString& file, const QString& question, const QString& answer);
  void setMethod(const QString& method);
  int chosenStep() const;
  int panelCount() const;
  QString emptyStateText() const;  // what the panels' space says while no run is ticked
  int pendingCount() const { return static_cast<int>(m_pending.size()); }
  const QHash<QString, ExplainOutcome>& cache() const { return m_cache; }
  QImage sampleImage() const { return m_sampleImage; }
  // The panels shown, as a figure (map_figure.h) and as a file: .pdf and .svg vector, .png at dpi.
  MapFigure figure() const;
  bool exportFigure(const QString& path, int dpi = 300);
  void exportFigureDialog();  // asks for the file
  QPushButton* exportButton() const { return m_export; }

 public Q_SLOTS:
  void showOutcome(const pivot::ExplainOutcome& outcome);

 Q_SIGNALS:
  void explainRequested(const pivot::ExplainJob& job);

 private:
  void refreshSample();
  void refreshSteps();
  void refreshPanels();
  ExplainJob jobFor(const RunSummary& run, const CheckpointInfo& checkpoint) const;
  std::vector<const RunSummary*> checkedRuns() const;
  // Each checked run's panel: its checkpoint at the chosen step and the job that computes its map.
  struct ShownPanel {
    const RunSummary* run;
    const CheckpointInfo* checkpoint;
    ExplainJob job;
  };
  std::vector<ShownPanel> shownPanels() const;
  QString checkedRunsSignature() const;  // what the panels show of the checked runs

  RunsModel* m_runs;
  RunsFilter* m_checklist;
  QHash<QString, ExplainOutcome> m_cache;
  QHash<QString, quint64> m_pending;  // key -> job id
  quint64 m_nextJob = 1;
  std::vector<int> m_steps;  // union of the checked runs' checkpoint steps
  QString m_shownRuns;       // checkedRunsSignature() when the panels were last made
  WorldConfig m_world;
  Sample m_sample;
  QImage m_sampleImage;

  QComboBox *m_source, *m_split, *m_mask, *m_method, *m_target, *m_colormap;
  QSpinBox *m_index, *m_layer, *m_stepBox;
  QLineEdit *m_imageFile, *m_question, *m_answer;
  QLabel *m_preview, *m_texts;
  QPushButton* m_export = nullptr;
  QLabel* m_emptyNote = nullptr;  // in the panels' place while there are none
  QListView* m_runList;
  QSlider* m_stepSlider;
  QGridLayout* m_panels;
  QWidget* m_panelHost;
};

}  // namespace pivot

Q_DECLARE_METATYPE(pivot::ExplainJob)
Q_DECLARE_METATYPE(pivot::ExplainOutcome)
