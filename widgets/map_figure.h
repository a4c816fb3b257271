// Inspect's figure as a file: the sample and one attribution map per run side by side, each
// captioned with its run, step and localisation score, the question, the answer the maps explain,
// the method, and a colour bar. PDF and SVG are vector (text as text, the colour bar a gradient,
// only the image and the maps embedded as pictures); PNG at a chosen DPI.
#pragma once
#include <QColor>
#include <QImage>
#include <QString>
#include <QVector>
#include <vector>

class QPainter;

namespace pivot {

struct MapFigure {
  QString question;
  QString answer;  // the answer whose probability the maps explain
  QString method;  // e.g. "gradmap · target sft · layer -2"
  QImage image;    // the sample as the model sees it
  struct Panel {
    QString run;  // run name
    int64_t step = 0;
    QColor colour;   // the run's colour, as in the curves and the runs table
    QImage overlay;  // the map over the image (null: not computed, `note` says why)
    QString score;   // "mass inside target 0.71 · pointing hit"
    QString note;
  };
  std::vector<Panel> panels;
  QVector<QRgb> colourScale;  // the colormap from low (0) to high (1); empty: no colour bar
};

// The figure's size in points (1/72 inch), for one row of panels.
QSizeF mapFigureSize(const MapFigure& figure);
// Draws the figure into `painter` at that size (points).
void paintMapFigure(QPainter& painter, const MapFigure& figure);
// .pdf, .svg or .png (at `dpi`) by the file's suffix; false when it cannot be written (an unknown
// suffix included).
bool saveMapFigure(const MapFigure& figure, const QString& path, int dpi = 300);

}  // namespace pivot
