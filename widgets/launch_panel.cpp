#include "launch_panel.h"

#include "config/vocabulary.h"

#include <QCheckBox>
#include <QComboBox>
#include <QConcatenateTablesProxyModel>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QStandardItemModel>
#include <QVBoxLayout>
#include <nlohmann/json.hpp>

#include "config/experiment_spec.h"
#include "config/train_config.h"
#include "results/encoder_style.h"
#include "runs_model.h"

namespace pivot {
namespace {

// What each stage is, as the stage box says it beside the stage's name.
const char* stageSummary(Stage stage) {
  switch (stage) {
    case Stage::Pretrain:
      return "0: encoder, SigLIP loss";
    case Stage::Align:
      return "1a: captions";
    case Stage::Instruct:
      return "1b: instructions";
    case Stage::Sft:
      return "2: chosen answers";
    case Stage::Dpo:
      return "2: preference pairs";
    case Stage::Grpo:
      return "2: sampled answers, verifiable rewards";
    case Stage::Mpo:
      return "2: DPO + BCO + SFT losses";
  }
  return "";
}

// The form's fields: config key, label, and the stages that show it (empty: every stage). Values
// come from the chosen preset and stage; a hidden field is not sent.
struct FormField {
  QString key, label;
  QStringList stages;
};
const std::vector<FormField>& formFields() {
  static const QStringList preference = {"dpo", "mpo"}, grpo = {"grpo"};
  static const std::vector<FormField> fields = {
      {"lr", "LM learning rate", {}},
      {"vision_lr", "Vision learning rate", {}},
      {"steps", "Steps", {}},
      {"batch_size", "Batch size", {}},
      {"seed", "Seed", {}},
      {"warmup_ratio", "Warmup ratio", {}},
      {"beta", "Beta", {"dpo", "mpo", "grpo"}},
      {"loss_type", "DPO losses", preference},
      {"loss_weights", "Loss weights", preference},
      {"sft_weight", "SFT weight", preference},
      {"num_generations", "Completions per prompt", grpo},
      {"max_completion_length", "Max completion tokens", grpo},
      {"temperature", "Temperature", grpo},
      {"epsilon", "Clip epsilon", grpo},
      {"epsilon_high", "Clip epsilon high", grpo},
      {"num_iterations", "Iterations per batch", grpo},
      {"reward_funcs", "Reward functions", grpo},
      {"reward_weights", "Reward weights", grpo}};
  return fields;
}

// Fields chosen from a vocabulary: config key, label, names, the stages that show it.
struct ChoiceField {
  QString key, label;
  const std::vector<std::string>& (*names)();
  QStringList stages;
};
const std::vector<ChoiceField>& choiceFields() {
  static const std::vector<ChoiceField> fields = {
      {"grpo_loss_type", "GRPO loss", grpoLossNames, {"grpo"}},
      {"scale_rewards", "Advantage scaling", rewardScalingNames, {"grpo"}}};
  return fields;
}

QString jsonText(const nlohmann::json& v) {
  if (v.is_number_float()) return QString::number(v.get<double>(), 'g', 6);
  return QString::fromStdString(v.is_string() ? v.get<std::string>() : v.dump());
}

}  // namespace

LaunchPanel::LaunchPanel(QWidget* parent) : QWidget(parent) {
  auto* layout = new QVBoxLayout(this);
  // What trains: the built-in miniature, or a real LLaVA folder on a dataset file.
  auto* model = new QGroupBox("Model");
  auto* modelForm = new QFormLayout(model);
  m_source = new QComboBox;
  m_source->setObjectName("sourceBox");
  m_source->addItem("ShapesWorld miniature (the preset's model)", "shapesworld");
  m_source->addItem("Hugging Face LLaVA folder + data file", "hf");
  modelForm->addRow("Source", m_source);
  m_modelFolder = new QLineEdit;
  m_modelFolder->setObjectName("modelFolderEdit");
  m_modelFolder->setPlaceholderText("folder with config.json, weights, tokenizer");
  m_dataFile = new QLineEdit;
  m_dataFile->setObjectName("dataFileEdit");
  m_dataFile->setPlaceholderText("LLaVA .json / preference .jsonl / MMPR meta.json");
  m_imageRoot = new QLineEdit;
  m_imageRoot->setObjectName("imageRootEdit");
  m_imageRoot->setPlaceholderText("optional: default the data file's folder");
  m_realRows = new QWidget;
  auto* realForm = new QFormLayout(m_realRows);
  realForm->setContentsMargins(0, 0, 0, 0);
  realForm->addRow("Model folder", pathRow(m_modelFolder, true, "Model folder"));
  realForm->addRow("Data file", pathRow(m_dataFile, false, "Data file"));
  realForm->addRow("Image root", pathRow(m_imageRoot, true, "Image root"));
  modelForm->addRow(m_realRows);
  m_realRows->setVisible(false);
  layout->addWidget(model);
  connect(m_source, QOverload<int>::of(&QComboBox::currentIndexChanged), this, [this] {
    m_realRows->setVisible(realModel());
    m_noParent->item(0, RunsModel::Name)
        ->setText(realModel() ? "none: the model folder's own weights"
                              : "none: run the earlier stages first");
    validate();
  });
  for (auto* edit : {m_modelFolder, m_dataFile, m_imageRoot})
    connect(edit, &QLineEdit::textChanged, this, &LaunchPanel::validate);

  auto* what = new QGroupBox("Run");
  auto* whatForm = new QFormLayout(what);
  m_preset = new QComboBox;
  m_preset->setObjectName("presetBox");
  m_stage = new QComboBox;
  m_stage->setObjectName("stageBox");
  for (const Stage stage : allStages())  // the Stage name table, with what each stage is
    m_stage->addItem(QString("%1 (%2)").arg(stageName(stage), stageSummary(stage)),
                     QString(stageName(stage)));
  m_stage->setCurrentIndex(m_stage->findData(QString(stageName(Stage::Dpo))));
  m_parent = new QComboBox;
  m_parent->setObjectName("parentBox");
  m_noParent = new QStandardItemModel(1, RunsModel::ColumnCount, this);
  m_noParent->setItem(0, RunsModel::Name, new QStandardItem("none: run the earlier stages first"));
  m_parents = new QConcatenateTablesProxyModel(this);
  m_parents->addSourceModel(m_noParent);
  m_parent->setModel(m_parents);
  m_parent->setModelColumn(RunsModel::Name);
  whatForm->addRow("Preset", m_preset);
  whatForm->addRow("Stage", m_stage);
  whatForm->addRow("Start from", m_parent);
  layout->addWidget(what);

  auto* values = new QGroupBox("Values");
  m_form = new QFormLayout(values);
  for (const auto& f : formFields()) {
    auto* edit = new QLineEdit;
    edit->setObjectName(f.key);
    m_fields[f.key] = edit;
    m_form->addRow(f.label, edit);
    connect(edit, &QLineEdit::textEdited, this, [this, key = f.key] {
      m_typed.insert(key);
      validate();
    });
  }
  m_fields["loss_type"]->setToolTip("TRL's loss_type list: " + QString::fromStdString([] {
                                      std::string all;
                                      for (const auto& n : dpoLossNames())
                                        all += (all.empty() ? "" : ", ") + n;
                                      return all;
                                    }()) +
                                    " (MPO: sigmoid,bco_pair,sft)");
  m_fields["reward_funcs"]->setToolTip(QString::fromStdString([] {
    std::string all;
    for (const auto& n : rewardFunctionNames()) all += (all.empty() ? "" : ", ") + n;
    return all;
  }()));
  for (const auto& f : choiceFields()) {
    auto* box = new QComboBox;
    box->setObjectName(f.key);
    for (const auto& n : f.names()) box->addItem(QString::fromStdString(n));
    m_choices[f.key] = box;
    m_form->addRow(f.label, box);
    connect(box, QOverload<int>::of(&QComboBox::currentIndexChanged), this, &LaunchPanel::validate);
    connect(box, QOverload<int>::of(&QComboBox::activated), this,
            [this, key = f.key] { m_typed.insert(key); });
  }
  m_device = new QComboBox;
  m_device->setObjectName("device");
  m_device->addItems({"auto", "cpu", "cuda"});
  m_choices["device"] = m_device;
  m_form->addRow("Device", m_device);
  // Data-parallel processes (torch.distributed: Gloo on CPU, NCCL on GPUs); the global batch is
  // the one above, split over them.
  m_processes = new QSpinBox;
  m_processes->setObjectName("processesBox");
  m_processes->setRange(1, 64);
  m_processes->setToolTip(
      "Data-parallel processes on this machine: the batch is split over them and their gradients "
      "summed, so the run takes the same steps as one process; it appears as one run");
  m_form->addRow("Processes", m_processes);
  connect(m_processes, QOverload<int>::of(&QSpinBox::valueChanged), this, &LaunchPanel::validate);
  m_presetValues = new QPushButton("Preset values");
  m_presetValues->setObjectName("presetValuesButton");
  m_presetValues->setToolTip(
      "Values typed by hand stay when the stage changes; this brings back the preset's for this "
      "stage");
  m_form->addRow(QString(), m_presetValues);
  connect(m_presetValues, &QPushButton::clicked, this, [this] {
    m_typed.clear();
    loadPresetValues();
  });
  layout->addWidget(values);

  // The form's verdict and the run buttons: one bar that a window may pin below a scrolling form.
  m_runBar = new QWidget;
  auto* runBar = new QVBoxLayout(m_runBar);
  runBar->setContentsMargins(0, 0, 0, 0);
  m_message = new QLabel;
  m_message->setWordWrap(true);
  m_message->setStyleSheet("color: #c0392b;");
  runBar->addWidget(m_message);
  auto* buttons = new QHBoxLayout;
  m_start = new QPushButton("Start");
  m_pause = new QPushButton("Pause");
  m_resume = new QPushButton("Resume");
  m_stop = new QPushButton("Stop");
  m_start->setDefault(true);
  for (auto* b : {m_start, m_pause, m_resume, m_stop}) buttons->addWidget(b);
  runBar->addLayout(buttons);
  layout->addWidget(m_runBar);

  // The whole study: stage 0, 1a, 1b, then SFT vs DPO per seed, transplants, probes, report.
  auto* experiment = new QGroupBox("Experiment (whole study, this preset)");
  auto* expForm = new QFormLayout(experiment);
  m_seeds = new QSpinBox;
  m_seeds->setObjectName("seedsBox");
  m_seeds->setRange(1, 20);
  m_seeds->setValue(3);
  m_sweep = new QLineEdit;
  m_sweep->setObjectName("sweepEdit");
  m_sweep->setPlaceholderText("optional: vision_lr=1e-5,1e-4");
  m_mixedWeight = new QLineEdit;
  m_mixedWeight->setObjectName("mixedWeightEdit");
  m_mixedWeight->setPlaceholderText("optional: SFT weight of a DPO+SFT arm");
  m_tuneLr = new QLineEdit;
  m_tuneLr->setObjectName("tuneLrEdit");
  m_tuneLr->setPlaceholderText("optional: 0.3,1,3");
  m_tuneLr->setToolTip(
      "learning-rate scales each arm tries on base 1; every base trains the one with the lowest "
      "loss of the arm's own objective on held-out items (no endpoint enters the choice)");
  m_bases = new QSpinBox;
  m_bases->setObjectName("basesBox");
  m_bases->setRange(1, 20);
  m_bases->setValue(1);
  m_bases->setToolTip(
      "independent stage-0/1 chains, the seeds nested in each: DPO − SFT intervals then cover "
      "the variance between chains");
  // How much of the machine the study takes: it runs as a child process beside the window.
  m_jobs = new QSpinBox;
  m_jobs->setObjectName("jobsBox");
  m_jobs->setRange(0, 64);
  m_jobs->setSpecialValueText("automatic");
  m_jobs->setToolTip(
      "stages trained side by side (pivot experiment --jobs); automatic: 2 from two "
      "cores up. The numbers do not depend on it");
  m_threads = new QSpinBox;
  m_threads->setObjectName("threadsBox");
  m_threads->setRange(0, 256);
  m_threads->setSpecialValueText("cores / stages");
  m_threads->setToolTip(
      "CPU threads of each stage (--set threads=N); with 1 stage at a time and "
      "1 thread the study leaves the other cores free");
  // The stage-2 methods compared with SFT, each from the same stage-1 model (`--arms`).
  auto* armsRow = new QWidget;
  auto* armsLayout = new QHBoxLayout(armsRow);
  armsLayout->setContentsMargins(0, 0, 0, 0);
  armsLayout->addWidget(new QLabel("SFT +"));
  for (const auto& method : studyMethods()) {
    if (method == "sft") continue;
    const QString arm = QString::fromStdString(method);
    auto* box = new QCheckBox(QString::fromStdString(encoderTitle(method)));
    box->setObjectName(arm + "ArmBox");
    box->setChecked(arm != "mpo");  // `pivot experiment`'s default: sft,dpo,grpo
    m_armBoxes[arm] = box;
    armsLayout->addWidget(box);
    connect(box, &QCheckBox::toggled, this, [this] { setExperimentRunning(m_experimentRunning); });
  }
  armsLayout->addStretch(1);
  expForm->addRow("Arms", armsRow);
  expForm->addRow("Bases", m_bases);
  expForm->addRow("Seeds per base", m_seeds);
  expForm->addRow("Stages at a time", m_jobs);
  expForm->addRow("Threads per stage", m_threads);
  expForm->addRow("Sweep", m_sweep);
  expForm->addRow("DPO+SFT arm", m_mixedWeight);
  expForm->addRow("Tune learning rates", m_tuneLr);
  m_experimentMessage = new QLabel;
  m_experimentMessage->setWordWrap(true);
  expForm->addRow(m_experimentMessage);
  auto* expButtons = new QHBoxLayout;
  m_runExperiment = new QPushButton("Run experiment");
  m_stopExperiment = new QPushButton("Stop experiment");
  expButtons->addWidget(m_runExperiment);
  expButtons->addWidget(m_stopExperiment);
  expForm->addRow(expButtons);
  layout->addWidget(experiment);
  layout->addStretch(1);
  connect(m_sweep, &QLineEdit::textEdited, this,
          [this] { setExperimentRunning(m_experimentRunning); });
  connect(m_mixedWeight, &QLineEdit::textEdited, this,
          [this] { setExperimentRunning(m_experimentRunning); });
  connect(m_tuneLr, &QLineEdit::textEdited, this,
          [this] { setExperimentRunning(m_experimentRunning); });
  connect(m_runExperiment, &QPushButton::clicked, this, [this] {
    if (auto r = experimentRequest()) Q_EMIT experimentRequested(*r);
  });
  connect(m_stopExperiment, &QPushButton::clicked, this, &LaunchPanel::stopExperimentRequested);
  setExperimentRunning(false);

  connect(m_preset, QOverload<int>::of(&QComboBox::currentIndexChanged), this, [this] {
    m_typed.clear();  // another preset: its own values
    loadPresetValues();
  });
  connect(m_stage, QOverload<int>::of(&QComboBox::currentIndexChanged), this,
          &LaunchPanel::loadPresetValues);
  connect(m_start, &QPushButton::clicked, this, [this] {
    if (auto r = request()) Q_EMIT startRequested(*r);
  });
  connect(m_pause, &QPushButton::clicked, this, &LaunchPanel::pauseRequested);
  connect(m_resume, &QPushButton::clicked, this, &LaunchPanel::resumeRequested);
  connect(m_stop, &QPushButton::clicked, this, &LaunchPanel::stopRequested);
  setPresets({"tiny", "mini"});
  setState(State::Idle);
}

void LaunchPanel::setPresets(const QStringList& presets) {
  const QString current = m_preset->currentText();
  m_preset->blockSignals(true);
  m_preset->clear();
  m_preset->addItems(presets);
  if (presets.contains(current)) m_preset->setCurrentText(current);
  m_preset->blockSignals(false);
  loadPresetValues();
}

void LaunchPanel::selectPreset(const QString& preset, const QString& stage) {
  m_typed.clear();
  if (m_preset->findText(preset) < 0) m_preset->addItem(preset);
  m_preset->setCurrentText(preset);
  const int s = m_stage->findData(stage);
  if (s >= 0) m_stage->setCurrentIndex(s);
  loadPresetValues();
}

void LaunchPanel::setRunsModel(RunsModel* runs) {
  auto* finished = new RunsFilter(
      runs,
      [](const RunSummary& r) {
        return r.info.status == RunStatus::Finished || r.info.status == RunStatus::Stopped;
      },
      this);
  finished->setLabel([](const RunSummary& r) {
    return QString("%1 (%2, %3)")
        .arg(QString::fromStdString(r.info.name), QString::fromStdString(r.info.stage),
             QString::fromStdString(r.info.preset));
  });
  m_parents->addSourceModel(finished);
}

void LaunchPanel::loadPresetValues() {
  try {
    const auto cfg =
        toJson(presetConfig(m_preset->currentText().toStdString(),
                            stageFromName(m_stage->currentData().toString().toStdString())));
    // A value typed by hand stays; the others are the preset's for this stage.
    for (auto it = m_fields.begin(); it != m_fields.end(); ++it)
      if (!m_typed.contains(it.key()))
        it.value()->setText(jsonText(cfg.at(it.key().toStdString())));
    for (auto it = m_choices.begin(); it != m_choices.end(); ++it)
      if (!m_typed.contains(it.key()))
        it.value()->setCurrentText(jsonText(cfg.at(it.key().toStdString())));
    // Only the stage's own settings show (and are sent); beta says which meaning it has.
    const QString stage = m_stage->currentData().toString();
    const auto shows = [&](const QStringList& stages) {
      return stages.isEmpty() || stages.contains(stage);
    };
    for (const auto& f : formFields()) m_form->setRowVisible(m_fields[f.key], shows(f.stages));
    for (const auto& f : choiceFields()) m_form->setRowVisible(m_choices[f.key], shows(f.stages));
    if (auto* label = qobject_cast<QLabel*>(m_form->labelForField(m_fields["beta"])))
      label->setText(stage == "grpo" ? "KL beta" : "DPO beta");
    m_fields["beta"]->setToolTip(stage == "grpo"
                                     ? "weight of the k3 KL to the stage-1 reference (0: no KL, "
                                       "no reference forward)"
                                     : "temperature of DPO's implicit reward");
  } catch (const std::exception& e) {
    m_message->setText(e.what());
  }
  validate();
}

std::optional<LaunchRequest> LaunchPanel::request() const {
  if (!m_valid) return std::nullopt;
  LaunchRequest r;
  r.preset = m_preset->currentText();
  r.stage = m_stage->currentData().toString();
  if (const auto id = m_parent->currentData(RunsModel::RunIdRole); id.isValid())
    r.parentRunId = id.toLongLong();
  for (auto it = m_fields.begin(); it != m_fields.end(); ++it)
    if (fieldShown(it.key())) r.overrides << it.key() + "=" + it.value()->text().trimmed();
  for (auto it = m_choices.begin(); it != m_choices.end(); ++it)
    if (fieldShown(it.key())) r.overrides << it.key() + "=" + it.value()->currentText();
  r.processes = m_processes->value();
  if (realModel()) {  // absolute, so that a resume finds them from anywhere
    r.overrides << "model_dir=" + QFileInfo(m_modelFolder->text().trimmed()).absoluteFilePath()
                << "data=" + QFileInfo(m_dataFile->text().trimmed()).absoluteFilePath();
    if (!m_imageRoot->text().trimmed().isEmpty())
      r.overrides << "image_root=" + QFileInfo(m_imageRoot->text().trimmed()).absoluteFilePath();
  }
  return r;
}

QStringList LaunchRequest::trainArguments() const {
  QStringList args = {"train", "--preset", preset, "--stage", stage};
  if (parentRunId) args << "--from" << QString::number(*parentRunId);
  for (const auto& o : overrides) args << "--set" << o;
  if (processes > 1) args << "--nproc" << QString::number(processes);
  return args;
}

bool LaunchPanel::realModel() const { return m_source->currentData().toString() == "hf"; }

bool LaunchPanel::fieldShown(const QString& key) const {
  const QString stage = m_stage->currentData().toString();
  for (const auto& f : formFields())
    if (f.key == key) return f.stages.isEmpty() || f.stages.contains(stage);
  for (const auto& f : choiceFields())
    if (f.key == key) return f.stages.isEmpty() || f.stages.contains(stage);
  return true;  // device
}

QWidget* LaunchPanel::pathRow(QLineEdit* edit, bool folder, const QString& title) {
  auto* row = new QWidget;
  auto* h = new QHBoxLayout(row);
  h->setContentsMargins(0, 0, 0, 0);
  h->addWidget(edit, 1);
  auto* browse = new QPushButton("Browse…");
  h->addWidget(browse);
  connect(browse, &QPushButton::clicked, this, [this, edit, folder, title] {
    const QString chosen =
        folder ? QFileDialog::getExistingDirectory(this, title, edit->text())
               : QFileDialog::getOpenFileName(this, title, edit->text(),
                                              "Datasets (*.json *.jsonl);;All files (*)");
    if (!chosen.isEmpty()) edit->setText(chosen);
  });
  return row;
}

QString LaunchPanel::validationMessage() const { return m_message->text(); }

void LaunchPanel::validate() {
  m_valid = true;
  QString message;
  TrainConfig cfg;
  try {
    cfg = presetConfig(m_preset->currentText().toStdString(),
                       stageFromName(m_stage->currentData().toString().toStdString()));
  } catch (const std::exception& e) {
    m_valid = false;
    message = e.what();
  }
  // The whole form at once, as `pivot train --set ...` applies it (settings that constrain each
  // other, such as batch_size and num_generations, in any order); the field the error names is
  // marked.
  std::vector<std::string> assignments;
  for (auto it = m_choices.begin(); it != m_choices.end(); ++it)
    if (fieldShown(it.key()))
      assignments.push_back((it.key() + "=" + it.value()->currentText()).toStdString());
  for (auto it = m_fields.begin(); it != m_fields.end(); ++it)
    if (fieldShown(it.key()))
      assignments.push_back((it.key() + "=" + it.value()->text().trimmed()).toStdString());
  for (auto* edit : m_fields) edit->setStyleSheet("");
  if (m_valid) {
    try {
      applyOverrides(cfg, assignments);
    } catch (const std::exception& e) {
      message = e.what();
      m_valid = false;
      for (auto it = m_fields.begin(); it != m_fields.end(); ++it)
        if (fieldShown(it.key()) &&
            (message.contains("'" + it.key() + "'") || message.startsWith(it.key() + " ")))
          it.value()->setStyleSheet("border: 1px solid #c0392b; background: #fdecea;");
    }
  }
  // Data parallel: every process takes an equal slice of each step's samples (GRPO: prompts).
  if (m_valid && m_processes && m_processes->value() > 1) {
    const bool grpo = cfg.stage == Stage::Grpo;
    const int perStep = grpo ? cfg.batch_size / std::max(1, cfg.num_generations) : cfg.batch_size;
    if (perStep % m_processes->value() != 0) {
      m_valid = false;
      message = QString("a global batch of %1%2 does not split evenly over %3 processes")
                    .arg(perStep)
                    .arg(grpo ? " prompts" : "")
                    .arg(m_processes->value());
    }
  }

  // A real model: what the trainer needs before it opens anything, named as the field.
  for (auto* edit : {m_modelFolder, m_dataFile, m_imageRoot}) edit->setStyleSheet("");
  if (m_valid && realModel()) {
    const QString folder = m_modelFolder->text().trimmed(), data = m_dataFile->text().trimmed(),
                  root = m_imageRoot->text().trimmed();
    auto refuse = [&](QLineEdit* edit, const QString& why) {
      edit->setStyleSheet("border: 1px solid #c0392b; background: #fdecea;");
      message = why;
      m_valid = false;
    };
    if (!QFileInfo(folder + "/config.json").isFile())
      refuse(m_modelFolder, folder.isEmpty() ? "Model folder: choose a Hugging Face LLaVA folder"
                                             : "Model folder: " + folder + " has no config.json");
    else if (!QFileInfo(folder + "/tokenizer.json").isFile())
      refuse(m_modelFolder, "Model folder: " + folder + " has no tokenizer.json");
    else if (!QFileInfo(data).isFile())
      refuse(m_dataFile, data.isEmpty() ? "Data file: choose a dataset file"
                                        : "Data file: " + data + " does not exist");
    else if (!root.isEmpty() && !QFileInfo(root).isDir())
      refuse(m_imageRoot, "Image root: " + root + " is not a folder");
    else if (m_stage->currentData().toString() == "pretrain")
      refuse(m_modelFolder,
             "a real model trains stages align, instruct, sft, dpo, grpo and mpo (stage 0 "
             "pre-trains ShapesWorld encoders only)");
  }
  m_message->setText(message);
  setState(m_state);
}

QStringList ExperimentRequest::arguments() const {
  QStringList args = {"experiment", "--preset", preset, "--seeds", QString::number(seeds)};
  if (bases > 1) args << "--bases" << QString::number(bases);
  args << "--arms" << arms.join(',');
  if (!sweep.isEmpty()) args << "--sweep" << sweep;
  if (mixedSftWeight > 0) args << "--mixed-sft-weight" << QString::number(mixedSftWeight, 'g', 17);
  if (!tuneLrScales.isEmpty()) {
    QStringList scales;
    for (const double scale : tuneLrScales) scales << QString::number(scale, 'g', 15);
    args << "--tune-lr" << scales.join(',');
  }
  if (jobs > 0) args << "--jobs" << QString::number(jobs);
  if (threads > 0) args << "--set" << QString("threads=%1").arg(threads);
  return args;
}

namespace {

// config/experiment_spec.h's messages name the command-line option at fault; the form names its
// field instead.
QString fieldMessage(QString message) {
  static const std::vector<std::pair<QString, QString>> fields = {
      {"--tune-lr", "Tune learning rates"},
      {"--mixed-sft-weight", "DPO+SFT arm"},
      {"--arms", "Arms"},
      {"--bases", "Bases"},
      {"--seeds", "Seeds per base"},
      {"bad --sweep", "Sweep: bad value"},
      {"--sweep", "Sweep"}};
  for (const auto& [option, field] : fields)
    if (message.startsWith(option)) return field + message.mid(option.size());
  return message;
}

}  // namespace

std::optional<ExperimentRequest> LaunchPanel::experimentRequest() const {
  ExperimentRequest r;
  r.preset = m_preset->currentText();
  r.seeds = m_seeds->value();
  r.bases = m_bases->value();
  r.jobs = m_jobs->value();
  r.threads = m_threads->value();
  r.sweep = m_sweep->text().trimmed();
  r.arms = QStringList{"sft"};
  for (auto it = m_armBoxes.begin(); it != m_armBoxes.end(); ++it)
    if (it.value()->isChecked()) r.arms << it.key();
  const QString weight = m_mixedWeight->text().trimmed();
  // The rules of `pivot experiment` (config/experiment_spec.h), every stage's config included.
  try {
    ExperimentSpec spec;
    spec.preset = r.preset.toStdString();
    spec.seeds = r.seeds;
    spec.bases = r.bases;
    parseArms(spec, r.arms.join(',').toStdString());
    if (!weight.isEmpty()) {
      bool ok = false;
      spec.mixedSftWeight = weight.toDouble(&ok);
      if (!ok)
        throw std::runtime_error("--mixed-sft-weight: '" + weight.toStdString() +
                                 "' is not a number");
    }
    if (!r.sweep.isEmpty()) parseSweep(spec, r.sweep.toStdString());
    parseTuneLr(spec, m_tuneLr->text().toStdString());
    (void)checkedSpec(spec);
    r.mixedSftWeight = spec.mixedSftWeight;
    for (const double scale : spec.tuneLrScales) r.tuneLrScales << scale;
  } catch (const std::exception& e) {
    m_experimentMessage->setText(
        QString("<span style='color:#c0392b'>%1</span>")
            .arg(fieldMessage(QString::fromUtf8(e.what())).toHtmlEscaped()));
    return std::nullopt;
  }
  return r;
}

QString LaunchPanel::experimentMessage() const { return m_experimentMessage->text(); }

void LaunchPanel::setExperimentRunning(bool running, const QString& progress) {
  m_experimentRunning = running;
  const bool valid = running || experimentRequest().has_value();  // an invalid form shows why
  if (valid) m_experimentMessage->setText(progress.toHtmlEscaped());
  m_runExperiment->setEnabled(!running && valid && m_state == State::Idle);
  m_stopExperiment->setEnabled(running);
  m_seeds->setEnabled(!running);
  m_bases->setEnabled(!running);
  m_jobs->setEnabled(!running);
  m_threads->setEnabled(!running);
  m_sweep->setEnabled(!running);
  m_mixedWeight->setEnabled(!running);
  m_tuneLr->setEnabled(!running);
  for (auto* box : m_armBoxes) box->setEnabled(!running);
}

void LaunchPanel::setState(State state) {
  m_state = state;
  m_start->setEnabled(state == State::Idle && m_valid);
  m_pause->setEnabled(state == State::Running);
  m_resume->setEnabled(state == State::Paused || state == State::Idle);
  m_stop->setEnabled(state != State::Idle);
  m_preset->setEnabled(state == State::Idle);
  m_stage->setEnabled(state == State::Idle);
  m_processes->setEnabled(state == State::Idle);
  // A data-parallel run is a child process: it stops with a checkpoint but does not pause.
  if (state == State::Running && m_processes->value() > 1) m_pause->setEnabled(false);
  if (m_source) m_source->setEnabled(state == State::Idle);
  if (m_realRows) m_realRows->setEnabled(state == State::Idle);
  if (m_runExperiment) m_runExperiment->setEnabled(state == State::Idle && !m_experimentRunning);
}

}  // namespace pivot
