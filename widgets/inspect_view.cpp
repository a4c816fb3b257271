#include "inspect_view.h"

#include "config/vocabulary.h"

#include <QComboBox>
#include <QFileDialog>
#include <QFormLayout>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QMenu>
#include <QMessageBox>
#include <QPainter>
#include <QPushButton>
#include <QScrollArea>
#include <QSlider>
#include <QSpinBox>
#include <QSplitter>
#include <QVBoxLayout>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "config/train_config.h"
#include "text/word_tokenizer.h"
#include "run_curves.h"

namespace pivot {
namespace {

constexpr int kPanelSide = 224;

QImage sceneImage(const Scene& s, int maskMode, const std::vector<int>& targets) {
  QImage img(s.size, s.size, QImage::Format_RGB888);
  for (int y = 0; y < s.size; ++y)
    std::memcpy(img.scanLine(y), s.rgb.data() + static_cast<size_t>(y * s.size * 3),
                static_cast<size_t>(s.size * 3));
  if (maskMode == 0) return img;
  for (int y = 0; y < s.size; ++y)
    for (int x = 0; x < s.size; ++x) {
      const size_t p = static_cast<size_t>(y * s.size + x);
      const int inst = s.instanceMask[p];
      QColor c(20, 20, 20);
      if (maskMode == 1 && s.classMask[p])
        c = QColor::fromHsv((s.classMask[p] * 47) % 360, 200, 230);
      if (maskMode == 2 && inst) c = runColour(inst);
      if (maskMode == 3)
        c = std::find(targets.begin(), targets.end(), inst - 1) != targets.end() && inst
                ? QColor(255, 255, 255)
                : QColor(20, 20, 20);
      img.setPixelColor(x, y, c);
    }
  return img;
}

}  // namespace

QString ExplainJob::cacheKey() const {
  return QString("%1|%2|%3|%4|%5|%6|%7|%8|%9")
      .arg(checkpointPath,
           fromWorld ? QString("w%1:%2:%3").arg(world.seed).arg(split).arg(index)
                     : imageFile + "|" + question + "|" + answer,
           method, target)
      .arg(layer)
      .arg(colormap)
      .arg(world.image_size)
      .arg(world.max_objects)
      .arg(world.noise);
}

InspectView::InspectView(RunsModel* runs, QWidget* parent) : QWidget(parent), m_runs(runs) {
  m_checklist = new RunsFilter(
      runs, [](const RunSummary& r) { return !r.checkpoints.empty(); }, this);
  m_checklist->setCheckable(true);
  m_checklist->setLabel([](const RunSummary& r) {
    return QString("%1  (%2, %3 checkpoints)")
        .arg(QString::fromStdString(r.info.name), QString::fromStdString(r.info.stage))
        .arg(r.checkpoints.size());
  });
  auto* split = new QSplitter(Qt::Horizontal, this);
  auto* outer = new QHBoxLayout(this);
  outer->setContentsMargins(4, 4, 4, 4);
  outer->addWidget(split);

  auto* left = new QWidget;
  auto* leftLayout = new QVBoxLayout(left);
  auto* sampleBox = new QGroupBox("Sample");
  auto* sampleForm = new QFormLayout(sampleBox);
  m_source = new QComboBox;
  m_source->addItems({"ShapesWorld sample", "Image file"});
  sampleForm->addRow("Source", m_source);
  m_split = new QComboBox;
  m_split->addItems({"train", "val", "test"});
  m_split->setCurrentIndex(1);
  sampleForm->addRow("Split", m_split);
  auto* indexRow = new QHBoxLayout;
  m_index = new QSpinBox;
  m_index->setRange(0, 1000000);
  auto* prev = new QPushButton("◀");
  auto* next = new QPushButton("▶");
  prev->setMaximumWidth(32);
  next->setMaximumWidth(32);
  indexRow->addWidget(prev);
  indexRow->addWidget(m_index, 1);
  indexRow->addWidget(next);
  sampleForm->addRow("Index", indexRow);
  auto* fileRow = new QHBoxLayout;
  m_imageFile = new QLineEdit;
  auto* browse = new QPushButton("…");
  browse->setMaximumWidth(32);
  fileRow->addWidget(m_imageFile, 1);
  fileRow->addWidget(browse);
  sampleForm->addRow("Image", fileRow);
  m_question = new QLineEdit;
  m_question->setPlaceholderText("what colour is the circle ?");
  // A real model reads any text; a miniature run only its vocabulary (capitals and a "?" without
  // a space are fine: the question is normalised first).
  const QString words = QString::fromStdString(WordTokenizer::shapesWorld().knownWords());
  m_question->setToolTip("A real model reads any question. Miniature runs know these words: " +
                         words);
  m_answer = new QLineEdit;
  m_answer->setPlaceholderText("red");
  m_answer->setToolTip(m_question->toolTip());
  sampleForm->addRow("Question", m_question);
  sampleForm->addRow("Answer", m_answer);
  m_mask = new QComboBox;
  m_mask->addItems({"image", "class mask", "instance mask", "target mask"});
  sampleForm->addRow("Show", m_mask);
  leftLayout->addWidget(sampleBox);
  m_preview = new QLabel;
  m_preview->setFixedSize(kPanelSide, kPanelSide);
  m_preview->setAlignment(Qt::AlignCenter);
  leftLayout->addWidget(m_preview, 0, Qt::AlignHCenter);
  m_texts = new QLabel;
  m_texts->setWordWrap(true);
  m_texts->setTextInteractionFlags(Qt::TextSelectableByMouse);
  leftLayout->addWidget(m_texts);

  auto* methodBox = new QGroupBox("Map");
  auto* methodForm = new QFormLayout(methodBox);
  m_method = new QComboBox;
  m_method->setObjectName("methodBox");
  for (const auto& method : attributionMethodNames())
    m_method->addItem(QString::fromStdString(method));
  m_target = new QComboBox;
  m_target->addItems({"sft", "dpo", "logprob"});
  m_layer = new QSpinBox;
  m_layer->setRange(-8, 64);
  m_layer->setValue(-2);
  m_colormap = new QComboBox;
  for (const auto& colormap : colormapNames())
    m_colormap->addItem(QString::fromStdString(colormap));
  methodForm->addRow("Method", m_method);
  methodForm->addRow("Target", m_target);
  methodForm->addRow("CAM layer", m_layer);
  methodForm->addRow("Colormap", m_colormap);
  leftLayout->addWidget(methodBox);
  leftLayout->addStretch(1);
  // The sample form scrolls on a short screen instead of squeezing its rows together.
  auto* leftScroll = new QScrollArea;
  leftScroll->setWidgetResizable(true);
  leftScroll->setFrameShape(QFrame::NoFrame);
  leftScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  leftScroll->setWidget(left);
  leftScroll->setMinimumWidth(left->sizeHint().width() + 16);
  split->addWidget(leftScroll);

  auto* right = new QWidget;
  auto* rightLayout = new QVBoxLayout(right);
  auto* runsRow = new QHBoxLayout;
  m_runList = new QListView;
  m_runList->setModel(m_checklist);
  m_runList->setModelColumn(RunsModel::Name);
  m_runList->setEditTriggers(QAbstractItemView::NoEditTriggers);
  m_runList->setMaximumHeight(110);
  runsRow->addWidget(new QLabel("Runs:"), 0, Qt::AlignTop);
  runsRow->addWidget(m_runList, 1);
  rightLayout->addLayout(runsRow);
  auto* stepRow = new QHBoxLayout;
  stepRow->addWidget(new QLabel("Step"));
  m_stepSlider = new QSlider(Qt::Horizontal);
  m_stepSlider->setObjectName("stepSlider");
  m_stepBox = new QSpinBox;
  m_stepBox->setRange(0, 100000000);
  m_stepBox->setKeyboardTracking(false);
  stepRow->addWidget(m_stepSlider, 1);
  stepRow->addWidget(m_stepBox);
  m_export = new QPushButton("Export…");
  m_export->setObjectName("inspectExportButton");
  m_export->setToolTip(
      "The image and the maps shown, with run, step, method, question, answer "
      "and colour bar: PDF or SVG (vector) or PNG (300 dpi)");
  stepRow->addWidget(m_export);
  rightLayout->addLayout(stepRow);
  auto* scroll = new QScrollArea;
  scroll->setWidgetResizable(true);
  m_panelHost = new QWidget;
  m_panels = new QGridLayout(m_panelHost);
  m_panels->setAlignment(Qt::AlignTop | Qt::AlignLeft);
  m_panelHost->setContextMenuPolicy(Qt::CustomContextMenu);
  connect(m_panelHost, &QWidget::customContextMenuRequested, this, [this](const QPoint& at) {
    QMenu menu;
    menu.addAction("Export figure…", this, &InspectView::exportFigureDialog);
    menu.exec(m_panelHost->mapToGlobal(at));
  });
  scroll->setWidget(m_panelHost);
  rightLayout->addWidget(scroll, 1);
  split->addWidget(right);
  split->setStretchFactor(1, 1);

  auto sampleChanged = [this] {
    refreshSample();
    refreshPanels();
  };
  connect(m_source, QOverload<int>::of(&QComboBox::currentIndexChanged), this, sampleChanged);
  connect(m_split, QOverload<int>::of(&QComboBox::currentIndexChanged), this, sampleChanged);
  connect(m_index, QOverload<int>::of(&QSpinBox::valueChanged), this, sampleChanged);
  connect(prev, &QPushButton::clicked, this, [this] { stepSample(-1); });
  connect(next, &QPushButton::clicked, this, [this] { stepSample(+1); });
  connect(browse, &QPushButton::clicked, this, [this] {
    const auto file = QFileDialog::getOpenFileName(this, "Open image", QString(),
                                                   "Images (*.png *.jpg *.jpeg *.bmp)");
    if (file.isEmpty()) return;
    m_imageFile->setText(file);
    m_source->setCurrentIndex(1);
    refreshSample();
    refreshPanels();
  });
  for (auto* edit : {m_question, m_answer, m_imageFile})
    connect(edit, &QLineEdit::editingFinished, this, sampleChanged);
  connect(m_mask, QOverload<int>::of(&QComboBox::currentIndexChanged), this,
          [this] { refreshSample(); });
  for (auto* box : {m_method, m_target, m_colormap})
    connect(box, QOverload<int>::of(&QComboBox::currentIndexChanged), this,
            &InspectView::refreshPanels);
  connect(m_layer, QOverload<int>::of(&QSpinBox::valueChanged), this, &InspectView::refreshPanels);
  connect(m_checklist, &RunsFilter::checkedRunsChanged, this, [this] {
    m_shownRuns = checkedRunsSignature();
    refreshSteps();
    refreshSample();
    refreshPanels();
  });
  connect(m_runs, &RunsModel::updated, this, [this] {
    // Only when a checked run gained a checkpoint or a new name: the panels are widgets made anew
    // (styled labels), 3-8 ms of the GUI thread at every poll of the store while a run trains.
    const QString shown = checkedRunsSignature();
    if (shown == m_shownRuns && !m_emptyNote) return;  // the note may name new runs
    m_shownRuns = shown;
    refreshSteps();
    refreshPanels();
  });
  connect(m_stepSlider, &QSlider::valueChanged, this, [this](int i) {
    if (i >= 0 && i < static_cast<int>(m_steps.size()) &&
        m_stepBox->value() != m_steps[static_cast<size_t>(i)])
      m_stepBox->setValue(m_steps[static_cast<size_t>(i)]);
    refreshPanels();
  });
  connect(m_stepBox, QOverload<int>::of(&QSpinBox::valueChanged), this, [this](int step) {
    if (m_steps.empty()) return;  // exact entry snaps to the nearest saved step
    auto it = std::min_element(m_steps.begin(), m_steps.end(), [step](int a, int b) {
      return std::abs(a - step) < std::abs(b - step);
    });
    m_stepSlider->setValue(static_cast<int>(it - m_steps.begin()));
  });
  connect(m_export, &QPushButton::clicked, this, &InspectView::exportFigureDialog);
  refreshSample();
  refreshPanels();  // the empty state until runs are ticked
}

void InspectView::setCheckedRuns(const QList<int64_t>& ids) { m_checklist->setCheckedRuns(ids); }

QString InspectView::checkedRunsSignature() const {
  QString signature;
  for (const auto* run : checkedRuns()) {
    signature += QString("%1:%2:").arg(run->info.id).arg(QString::fromStdString(run->info.name));
    for (const auto& c : run->checkpoints) signature += QString::number(c.step) + ",";
    signature += ";";
  }
  return signature;
}

std::vector<const RunSummary*> InspectView::checkedRuns() const {
  std::vector<const RunSummary*> out;
  for (const auto id : m_checklist->checkedRuns())
    if (const auto* run = m_runs->run(id)) out.push_back(run);
  return out;
}

void InspectView::setSample(int splitIndex, qint64 index) {
  m_source->setCurrentIndex(0);
  m_split->setCurrentIndex(splitIndex);
  m_index->setValue(static_cast<int>(index));
}

void InspectView::setPhoto(const QString& file, const QString& question, const QString& answer) {
  m_imageFile->setText(file);
  m_question->setText(question);
  m_answer->setText(answer);
  m_source->setCurrentIndex(1);
  refreshSample();
  refreshPanels();
}

void InspectView::setMethod(const QString& method) { m_method->setCurrentText(method); }

int InspectView::chosenStep() const { return m_stepBox->value(); }

int InspectView::panelCount() const { return m_emptyNote ? 0 : m_panels->count(); }

QString InspectView::emptyStateText() const {
  return m_emptyNote ? m_emptyNote->text() : QString();
}

void InspectView::refreshSteps() {
  std::set<int> steps;
  for (const auto* run : checkedRuns())
    for (const auto& c : run->checkpoints) steps.insert(static_cast<int>(c.step));
  const int current = m_stepBox->value();
  m_steps.assign(steps.begin(), steps.end());
  m_stepSlider->blockSignals(true);
  m_stepSlider->setRange(0, std::max(0, static_cast<int>(m_steps.size()) - 1));
  // Keep the chosen step when it still exists, else go to the last one.
  auto it = std::find(m_steps.begin(), m_steps.end(), current);
  m_stepSlider->setValue(it != m_steps.end() ? static_cast<int>(it - m_steps.begin())
                                             : m_stepSlider->maximum());
  m_stepSlider->blockSignals(false);
  m_stepBox->blockSignals(true);
  m_stepBox->setValue(m_steps.empty() ? 0 : m_steps[static_cast<size_t>(m_stepSlider->value())]);
  m_stepBox->blockSignals(false);
}

void InspectView::refreshSample() {
  // The world of the first checked run (its image size and object counts), else the tiny preset's.
  m_world = presetConfig("tiny", Stage::Dpo).world;
  if (const auto checked = checkedRuns(); !checked.empty()) {
    try {
      m_world = trainConfigFromJson(nlohmann::json::parse(checked.front()->info.configJson)).world;
    } catch (const std::exception&) {
    }
  }
  const bool world = m_source->currentIndex() == 0;
  m_split->setEnabled(world);
  m_index->setEnabled(world);
  if (world) {
    m_sample =
        ShapesWorld(m_world).sample(static_cast<Split>(m_split->currentIndex()), m_index->value());
    m_sampleImage = sceneImage(m_sample.scene, m_mask->currentIndex(), m_sample.targets);
    m_texts->setText(
        QString("<b>%1</b> (%2)<br>chosen: <b>%3</b><br>rejected: %4<br><small>%5</small>")
            .arg(QString::fromStdString(m_sample.question).toHtmlEscaped(),
                 categoryName(m_sample.category),
                 QString::fromStdString(m_sample.answer).toHtmlEscaped(),
                 QString::fromStdString(m_sample.rejected).toHtmlEscaped(),
                 QString::fromStdString(m_sample.caption).toHtmlEscaped()));
  } else {
    m_sampleImage = QImage(m_imageFile->text());
    m_texts->setText(
        QString("<b>%1</b><br>answer: <b>%2</b>")
            .arg(m_question->text().toHtmlEscaped(), m_answer->text().toHtmlEscaped()));
  }
  m_preview->setPixmap(QPixmap::fromImage(
      m_sampleImage.scaled(kPanelSide, kPanelSide, Qt::KeepAspectRatio, Qt::FastTransformation)));
}

ExplainJob InspectView::jobFor(const RunSummary& run, const CheckpointInfo& checkpoint) const {
  ExplainJob job;
  job.checkpointPath = QString::fromStdString(checkpoint.path);
  job.label = QString("%1 @ %2").arg(QString::fromStdString(run.info.name)).arg(checkpoint.step);
  job.fromWorld = m_source->currentIndex() == 0;
  job.world = m_world;
  job.split = m_split->currentIndex();
  job.index = m_index->value();
  job.imageFile = m_imageFile->text();
  job.question = m_question->text().trimmed();
  job.answer = m_answer->text().trimmed();
  job.method = m_method->currentText();
  job.target = m_target->currentText();
  job.layer = m_layer->value();
  job.colormap = m_colormap->currentText();
  return job;
}

std::vector<InspectView::ShownPanel> InspectView::shownPanels() const {
  std::vector<ShownPanel> shown;
  const int step = m_stepBox->value();
  for (const auto* run : checkedRuns()) {
    // The run's checkpoint at the chosen step, or the last one before it (or its first).
    const CheckpointInfo* cp = &run->checkpoints.front();
    for (const auto& c : run->checkpoints)
      if (c.step <= step) cp = &c;
    shown.push_back({run, cp, jobFor(*run, *cp)});
  }
  return shown;
}

void InspectView::refreshPanels() {
  while (auto* item = m_panels->takeAt(0)) {
    delete item->widget();
    delete item;
  }
  m_emptyNote = nullptr;
  if (m_source->currentIndex() == 1 &&
      (m_imageFile->text().isEmpty() || m_question->text().isEmpty() || m_answer->text().isEmpty()))
    return;
  auto shown = shownPanels();
  if (shown.empty()) {  // say what fills this space
    auto* note = new QLabel(
        m_checklist->rowCount() == 0
            ? "No run has a checkpoint yet. Train one from the Launch panel: its checkpoints "
              "appear in the list above, and ticking runs there shows where each encoder looks."
            : "Tick one or more runs in the list above to see where their encoders look on this "
              "sample, side by side; the Step slider moves every panel through the checkpoints.");
    note->setObjectName("inspectEmptyState");
    note->setWordWrap(true);
    note->setMaximumWidth(520);
    note->setStyleSheet("color: #777; font-size: 11pt; padding: 24px;");
    m_panels->addWidget(note, 0, 0);
    m_emptyNote = note;
    return;
  }
  int column = 0;
  for (auto& [checked, checkpoint, job] : shown) {
    const auto& run = *checked;
    const QString key = job.cacheKey();
    auto* panel = new QWidget;
    auto* layout = new QVBoxLayout(panel);
    layout->setContentsMargins(2, 2, 2, 2);
    auto* title = new QLabel(job.label);
    title->setStyleSheet(
        QString("font-weight: bold; color: %1;").arg(runColour(run.info.id).darker(130).name()));
    auto* picture = new QLabel;
    picture->setFixedSize(kPanelSide, kPanelSide);
    picture->setAlignment(Qt::AlignCenter);
    picture->setStyleSheet("background: #222; color: #ddd;");
    auto* score = new QLabel;
    score->setWordWrap(true);
    score->setMaximumWidth(kPanelSide);
    layout->addWidget(title);
    layout->addWidget(picture);
    layout->addWidget(score);
    if (auto hit = m_cache.find(key); hit != m_cache.end()) {
      const auto& o = hit.value();
      if (!o.error.isEmpty()) {
        picture->setText("error");
        score->setText(o.error);
      } else {
        picture->setPixmap(QPixmap::fromImage(o.overlay.scaled(
            kPanelSide, kPanelSide, Qt::KeepAspectRatio, Qt::SmoothTransformation)));
        QString text = o.scored ? QString("mass inside target %1 · pointing %2")
                                      .arg(o.mass, 0, 'f', 2)
                                      .arg(o.hit ? "hit" : "miss")
                                : QString("no target mask");
        if (!o.warning.isEmpty())
          text += "<br><span style='color:#b9770e'>⚠ " + o.warning.toHtmlEscaped() + "</span>";
        score->setText(text);
      }
    } else {
      picture->setText("computing…");
      if (!m_pending.contains(key)) {
        job.id = m_nextJob++;
        m_pending.insert(key, job.id);
        Q_EMIT explainRequested(job);
      }
    }
    m_panels->addWidget(panel, column / 4, column % 4);
    ++column;
  }
}

void InspectView::showOutcome(const ExplainOutcome& outcome) {
  m_pending.remove(outcome.key);
  m_cache.insert(outcome.key, outcome);
  refreshPanels();
}

}  // namespace pivot

namespace pivot {

MapFigure InspectView::figure() const {
  MapFigure figure;
  const bool world = m_source->currentIndex() == 0;
  figure.question = world ? QString::fromStdString(m_sample.question) : m_question->text();
  figure.answer = world ? QString::fromStdString(m_sample.answer) : m_answer->text();
  figure.method = QString("%1 · target %2 · layer %3")
                      .arg(m_method->currentText(), m_target->currentText())
                      .arg(m_layer->value());
  figure.image = world ? sceneImage(m_sample.scene, 0, {}) : m_sampleImage;
  for (const auto& shown : shownPanels()) {
    MapFigure::Panel panel;
    panel.run = QString::fromStdString(shown.run->info.name);
    panel.step = shown.checkpoint->step;
    panel.colour = runColour(shown.run->info.id);
    const auto hit = m_cache.find(shown.job.cacheKey());
    if (hit == m_cache.end()) {
      panel.note = "not computed yet";
    } else if (!hit->error.isEmpty()) {
      panel.note = hit->error;
    } else {
      panel.overlay = hit->overlay;
      panel.score = hit->scored ? QString("mass inside target %1 · pointing %2")
                                      .arg(hit->mass, 0, 'f', 2)
                                      .arg(hit->hit ? "hit" : "miss")
                                : QString("no target mask");
      if (figure.colourScale.isEmpty()) figure.colourScale = hit->colourScale;
    }
    figure.panels.push_back(panel);
  }
  return figure;
}

bool InspectView::exportFigure(const QString& path, int dpi) {
  return saveMapFigure(figure(), path, dpi);
}

void InspectView::exportFigureDialog() {
  const QString path = QFileDialog::getSaveFileName(
      this, "Export figure", "inspect.pdf",
      "PDF, vector (*.pdf);;SVG, vector (*.svg);;PNG, 300 dpi (*.png)");
  if (path.isEmpty()) return;
  if (!exportFigure(path))
    QMessageBox::warning(this, "Export figure",
                         "Could not write " + path + " (the name must end in .pdf, .svg or .png)");
}

int InspectView::sampleIndex() const { return m_index->value(); }

void InspectView::stepSample(int delta) {
  m_source->setCurrentIndex(0);
  m_index->setValue(std::max(0, m_index->value() + delta));
}

}  // namespace pivot
