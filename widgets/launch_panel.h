// The launch panel: what trains (ShapesWorld, or a Hugging Face LLaVA folder with a data file),
// preset, stage, parent run, and a form over the preset's main values, each validated as you type
// by the same rules the `pivot` command applies; Start, Pause, Resume, Stop.
#pragma once
#include <QMap>
#include <QSet>
#include <QStringList>
#include <QWidget>
#include <optional>

#include "store/run_store.h"

class QConcatenateTablesProxyModel;
class QStandardItemModel;

class QCheckBox;
class QComboBox;
class QFormLayout;
class QSpinBox;
class QLabel;
class QLineEdit;
class QPushButton;

namespace pivot {

struct LaunchRequest {
  QString preset = "tiny";             // tiny, mini or a preset .json path
  QString stage = "dpo";               // pretrain | align | instruct | sft | dpo | grpo | mpo
  std::optional<int64_t> parentRunId;  // none: the stages this one needs run first
  QStringList overrides;               // key=value, as `pivot train --set` (a real model's folder
                                       // and data among them: model_dir=, data=, image_root=)
  int processes = 1;  // > 1: data-parallel, `pivot train --nproc N` as a child process
  QStringList trainArguments() const;  // `pivot train` arguments of this request (no workspace)
};

// `pivot experiment` from the window: the whole study for the chosen preset.
struct ExperimentRequest {
  QString preset = "tiny";
  int bases = 1;  // independent stage-0/1 chains (intervals over bases when > 1)
  int seeds = 3;
  QString sweep;                              // key=v1,v2,... or empty
  QStringList arms = {"sft", "dpo", "grpo"};  // the stage-2 methods compared
  double mixedSftWeight = 0;                  // > 0: the third arm
  QList<double> tuneLrScales;     // each arm's learning-rate candidates (`--tune-lr`); empty: none
  int jobs = 0;                   // stages side by side (`--jobs`); 0: the command's default
  int threads = 0;                // CPU threads per stage (`--set threads=N`); 0: cores / jobs
  QStringList arguments() const;  // the `pivot experiment` arguments
};

class LaunchPanel : public QWidget {
  Q_OBJECT
 public:
  enum class State { Idle, Running, Paused };
  explicit LaunchPanel(QWidget* parent = nullptr);

  void setPresets(const QStringList& presets);  // built-ins plus found .json files
  // The parent picker offers the model's finished and stopped runs after "none".
  void setRunsModel(class RunsModel* runs);
  QComboBox* parentBox() const { return m_parent; }
  void setState(State state);
  State state() const { return m_state; }

  // The request the form describes; empty when a field is invalid (the message says which).
  std::optional<LaunchRequest> request() const;
  QString validationMessage() const;
  QLineEdit* field(const QString& key) const { return m_fields.value(key); }
  QComboBox* choice(const QString& key) const { return m_choices.value(key); }  // device, ...
  bool fieldShown(const QString& key) const;  // the chosen stage's own settings show
  QComboBox* presetBox() const { return m_preset; }
  QComboBox* stageBox() const { return m_stage; }
  // The model source: ShapesWorld (the preset's miniature) or a real model folder and its data.
  QComboBox* sourceBox() const { return m_source; }
  QLineEdit* modelFolderEdit() const { return m_modelFolder; }
  QLineEdit* dataFileEdit() const { return m_dataFile; }
  QLineEdit* imageRootEdit() const { return m_imageRoot; }
  // The validation message and Start/Pause/Resume/Stop, in the panel's layout until a window
  // takes the bar to keep it in view below a scrolling form (it stays the panel's to drive).
  QWidget* runBar() const { return m_runBar; }
  QPushButton* startButton() const { return m_start; }
  QPushButton* pauseButton() const { return m_pause; }
  QPushButton* resumeButton() const { return m_resume; }
  QPushButton* stopButton() const { return m_stop; }
  void selectPreset(const QString& preset, const QString& stage);

  // The experiment group: seeds, sweep, third arm, Run / Stop.
  std::optional<ExperimentRequest> experimentRequest() const;  // empty when the sweep is invalid
  void setExperimentRunning(bool running, const QString& progress = {});
  QSpinBox* seedsBox() const { return m_seeds; }
  QSpinBox* processesBox() const { return m_processes; }
  QSpinBox* basesBox() const { return m_bases; }
  QSpinBox* jobsBox() const { return m_jobs; }
  QSpinBox* threadsBox() const { return m_threads; }
  // The form's values typed by hand: a change of stage keeps them (where the stage shows the key);
  // a change of preset, or "Preset values", brings back the preset's.
  QStringList typedKeys() const { return QStringList(m_typed.begin(), m_typed.end()); }
  QPushButton* presetValuesButton() const { return m_presetValues; }
  QLineEdit* sweepEdit() const { return m_sweep; }
  QLineEdit* mixedWeightEdit() const { return m_mixedWeight; }
  QLineEdit* tuneLrEdit() const { return m_tuneLr; }
  QCheckBox* armBox(const QString& arm) const { return m_armBoxes.value(arm); }
  QPushButton* experimentButton() const { return m_runExperiment; }
  QPushButton* stopExperimentButton() const { return m_stopExperiment; }
  QString experimentMessage() const;

 Q_SIGNALS:
  void startRequested(const pivot::LaunchRequest& request);
  void pauseRequested();
  void resumeRequested();
  void stopRequested();
  void experimentRequested(const pivot::ExperimentRequest& request);
  void stopExperimentRequested();

 private:
  void loadPresetValues();
  void validate();

  QWidget* pathRow(QLineEdit* edit, bool folder, const QString& title);
  bool realModel() const;

  QComboBox* m_source = nullptr;
  QLineEdit *m_modelFolder = nullptr, *m_dataFile = nullptr, *m_imageRoot = nullptr;
  QWidget* m_realRows = nullptr;
  QComboBox* m_preset = nullptr;
  QComboBox* m_stage = nullptr;
  QComboBox* m_parent = nullptr;
  QStandardItemModel* m_noParent = nullptr;  // the picker's first row: "none: ..."
  QConcatenateTablesProxyModel* m_parents = nullptr;
  QComboBox* m_device = nullptr;
  QFormLayout* m_form = nullptr;
  QMap<QString, QLineEdit*> m_fields;   // config key -> editor
  QMap<QString, QComboBox*> m_choices;  // config key -> a vocabulary's names
  QLabel* m_message = nullptr;
  QPushButton *m_start = nullptr, *m_pause = nullptr, *m_resume = nullptr, *m_stop = nullptr;
  QSpinBox* m_seeds = nullptr;
  QSpinBox* m_processes = nullptr;
  QSpinBox* m_bases = nullptr;
  QSpinBox* m_jobs = nullptr;
  QSpinBox* m_threads = nullptr;
  QSet<QString> m_typed;  // keys of the form's values typed by hand
  QPushButton* m_presetValues = nullptr;
  QWidget* m_runBar = nullptr;
  QLineEdit* m_sweep = nullptr;
  QLineEdit* m_mixedWeight = nullptr;
  QLineEdit* m_tuneLr = nullptr;
  QMap<QString, QCheckBox*> m_armBoxes;  // dpo, grpo, mpo (sft always runs)
  QLabel* m_experimentMessage = nullptr;
  QPushButton *m_runExperiment = nullptr, *m_stopExperiment = nullptr;
  bool m_experimentRunning = false;
  State m_state = State::Idle;
  bool m_valid = true;
};

}  // namespace pivot
