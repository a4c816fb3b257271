// Report charts (no Qt): grouped bars with error bars, and line charts, drawn as a Drawing that
// saveDrawing() writes as vector PDF or SVG, or rasterises to PNG (visualization/drawing.h).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "visualization/drawing.h"

namespace pivot {

struct BarGroup {
  std::string label;           // x-axis category, e.g. "shape"
  std::vector<double> values;  // one per series; NaN = no bar
  std::vector<double> errors;  // half-length of the error bar (std over seeds); empty or 0 = none
  // Per series, points drawn on its bar (each base's mean in a nested study); empty = none.
  std::vector<std::vector<double>> points;
};

struct BarChart {
  std::string title, yLabel;
  std::vector<std::string> series;              // legend, e.g. original | SFT | DPO
  std::vector<std::array<uint8_t, 3>> colours;  // per series; empty: seriesColour(index)
  std::vector<BarGroup> groups;
  double yMin = 0, yMax = 1;
  std::vector<double> referenceLines;        // dashed horizontal lines (e.g. chance)
  std::vector<std::string> referenceLabels;  // what each line is, written above its right end
};

struct LineSeries {
  std::string label;
  std::array<uint8_t, 3> colour = {0, 0, 0};  // all black: seriesColour(index)
  std::vector<double> x, y;
};

struct LineChart {
  std::string title, xLabel, yLabel;
  std::vector<LineSeries> series;
};

// The series colours (Okabe-Ito, colour-blind safe), by series index.
std::array<uint8_t, 3> seriesColour(size_t index);
// An axis tick's label with as many decimals as the step between ticks needs (ticks 0.05 apart
// read 1.65, 1.70, not 1.7 twice), and "0", not "-0", for a value that is zero up to rounding.
std::string axisTickLabel(double value, double step);

Drawing drawBarChart(const BarChart& chart, int width = 960, int height = 480);
Drawing drawLineChart(const LineChart& chart, int width = 640, int height = 400);
// Drawings side by side (rows of `perRow`), each in a cell of the largest one's size.
Drawing tileDrawings(const std::vector<Drawing>& drawings, int perRow);
// The charts rasterised (needs OpenCV).
RgbImage renderBarChart(const BarChart& chart, int width = 960, int height = 480);
RgbImage renderLineChart(const LineChart& chart, int width = 640, int height = 400);

}  // namespace pivot
