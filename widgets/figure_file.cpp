#include "figure_file.h"

#include <QFileInfo>
#include <QImage>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QSvgGenerator>

namespace pivot {

bool saveFigureFile(const QString& path, QSizeF size, const QString& title,
                    const std::function<void(QPainter&)>& paint, int dpi) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  QPainter painter;
  if (suffix == "pdf") {
    QPdfWriter pdf(path);
    pdf.setResolution(72);  // one unit a point: the figure's coordinates as they are
    pdf.setPageSize(QPageSize(size, QPageSize::Point));
    pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
    pdf.setTitle(title);
    pdf.setCreator("PIVOT Workbench");
    if (!painter.begin(&pdf)) return false;
    paint(painter);
    return painter.end();
  }
  if (suffix == "svg") {
    QSvgGenerator svg;
    svg.setFileName(path);
    svg.setSize(size.toSize());
    svg.setViewBox(QRectF(QPointF(0, 0), size));
    svg.setResolution(72);
    svg.setTitle(title);
    if (!painter.begin(&svg)) return false;
    paint(painter);
    return painter.end();
  }
  if (suffix != "png") return false;
  const double scale = dpi / 72.0;
  QImage image((size * scale).toSize(), QImage::Format_RGB32);
  // Painted at 72 dpi (a font's point one unit, as in the PDF), scaled; then tagged with `dpi`.
  const auto dotsPerMeter = [&image](double dotsPerInch) {
    image.setDotsPerMeterX(qRound(dotsPerInch / 0.0254));
    image.setDotsPerMeterY(qRound(dotsPerInch / 0.0254));
  };
  dotsPerMeter(72);
  image.fill(Qt::white);
  painter.begin(&image);
  painter.scale(scale, scale);
  paint(painter);
  painter.end();
  dotsPerMeter(dpi);
  return image.save(path);
}

}  // namespace pivot
