#include "map_figure.h"

#include "figure_file.h"

#include <QLinearGradient>
#include <QPainter>

namespace pivot {
namespace {

// The layout in points: panels of one size in a row, text above and below, the bar at the right.
constexpr double kMargin = 12, kPanel = 150, kGap = 8, kHeader = 44, kCaption = 30;
constexpr double kBarWidth = 10, kBarSpace = 56;

QFont figureFont(double points, bool bold = false) {
  QFont font("DejaVu Sans");
  font.setPointSizeF(points);
  font.setBold(bold);
  return font;
}

void paintPanel(QPainter& p, const QRectF& box, const QImage& picture, const QString& title,
                const QColor& titleColour, const QStringList& lines) {
  p.setFont(figureFont(8, true));
  p.setPen(titleColour);
  p.drawText(QRectF(box.left(), box.top() - 14, box.width(), 13), Qt::AlignLeft | Qt::AlignBottom,
             title);
  if (picture.isNull()) {
    p.fillRect(box, QColor("#222222"));
  } else {
    p.drawImage(box, picture);
  }
  p.setFont(figureFont(7));
  p.setPen(QColor("#333333"));
  double y = box.bottom() + 3;
  for (const auto& line : lines) {
    p.drawText(QRectF(box.left(), y, box.width(), 11), Qt::AlignLeft | Qt::AlignTop, line);
    y += 11;
  }
}

void paintColourBar(QPainter& p, const QRectF& bar, const QVector<QRgb>& scale) {
  QLinearGradient gradient(bar.bottomLeft(), bar.topLeft());  // low at the bottom
  for (int i = 0; i < scale.size(); ++i)
    gradient.setColorAt(scale.size() > 1 ? double(i) / (scale.size() - 1) : 0, QColor(scale[i]));
  p.fillRect(bar, gradient);
  p.setPen(QPen(QColor("#555555"), 0.5));
  p.drawRect(bar);
  p.setFont(figureFont(7));
  p.setPen(QColor("#333333"));
  const QRectF labels(bar.right() + 3, bar.top() - 6, kBarSpace - kBarWidth - 4, 12);
  p.drawText(labels, Qt::AlignLeft | Qt::AlignVCenter, "high");
  p.drawText(labels.translated(0, bar.height()), Qt::AlignLeft | Qt::AlignVCenter, "low");
  p.save();  // what the colours mean, along the bar
  p.translate(bar.right() + 14, bar.center().y());
  p.rotate(-90);
  p.drawText(QRectF(-bar.height() / 2, 0, bar.height(), 12), Qt::AlignCenter,
             "attribution, each map 0-1");
  p.restore();
}

}  // namespace

QSizeF mapFigureSize(const MapFigure& figure) {
  const double columns = 1 + static_cast<double>(figure.panels.size());
  const double bar = figure.colourScale.isEmpty() ? 0 : kBarSpace;
  return {2 * kMargin + columns * kPanel + (columns - 1) * kGap + bar,
          2 * kMargin + kHeader + kPanel + kCaption};
}

void paintMapFigure(QPainter& p, const MapFigure& figure) {
  const QSizeF size = mapFigureSize(figure);
  p.fillRect(QRectF(QPointF(0, 0), size), Qt::white);
  p.setRenderHint(QPainter::Antialiasing);
  p.setRenderHint(QPainter::SmoothPixmapTransform);
  p.setRenderHint(QPainter::LosslessImageRendering);  // a PDF keeps the maps exact, not JPEG
  const double width = size.width() - 2 * kMargin;
  p.setPen(Qt::black);
  p.setFont(figureFont(10, true));
  p.drawText(QRectF(kMargin, kMargin, width, 14), Qt::AlignLeft | Qt::AlignTop,
             "Q: " + figure.question);
  p.setFont(figureFont(8));
  p.setPen(QColor("#333333"));
  p.drawText(QRectF(kMargin, kMargin + 15, width, 12), Qt::AlignLeft | Qt::AlignTop,
             "A (explained): " + figure.answer + "    map: " + figure.method);
  QRectF box(kMargin, kMargin + kHeader, kPanel, kPanel);
  paintPanel(p, box, figure.image, "image", Qt::black, {});
  for (const auto& panel : figure.panels) {
    box.translate(kPanel + kGap, 0);
    QStringList lines;
    if (!panel.score.isEmpty()) lines << panel.score;
    if (!panel.note.isEmpty()) lines << panel.note;
    paintPanel(p, box, panel.overlay, QString("%1 @ step %2").arg(panel.run).arg(panel.step),
               panel.colour.darker(130), lines);
  }
  if (!figure.colourScale.isEmpty())
    paintColourBar(p, QRectF(box.right() + 12, box.top(), kBarWidth, kPanel), figure.colourScale);
}

bool saveMapFigure(const MapFigure& figure, const QString& path, int dpi) {
  return saveFigureFile(
      path, mapFigureSize(figure), "Q: " + figure.question,
      [&figure](QPainter& painter) { paintMapFigure(painter, figure); }, dpi);
}

}  // namespace pivot
