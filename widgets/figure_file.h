// A figure painted with QPainter, written as a file by its suffix: PDF and SVG are vector (text as
// text, shapes as paths, only pictures embedded as images), PNG is rendered at a chosen DPI. The
// figure paints in points (1/72 inch) into a page of `size` points. Used by Inspect's map figure
// and the Completions table.
#pragma once
#include <QSizeF>
#include <QString>
#include <functional>

class QPainter;

namespace pivot {

// False when the file cannot be written (an unknown suffix included).
bool saveFigureFile(const QString& path, QSizeF size, const QString& title,
                    const std::function<void(QPainter&)>& paint, int dpi = 300);

}  // namespace pivot
