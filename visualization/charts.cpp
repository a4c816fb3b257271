#include "visualization/charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace pivot {
namespace {

const Colour kInk{40, 40, 40}, kGrid{225, 225, 225}, kWhite{255, 255, 255};
constexpr double kLabel = 13, kTitle = 16, kNote = 12;  // text sizes, pixels per em

// Nice round tick spacing for a range.
double tickStep(double span, int wanted) {
  const double raw = span / std::max(1, wanted);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double f : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= f * mag) return f * mag;
  return 10 * mag;
}

struct Frame {
  double x, y, w, h;  // the plot's rectangle
  double y0, y1;      // the values at its bottom and top
  double toY(double v) const { return y + h - (v - y0) / (y1 - y0) * h; }
};

Frame drawAxes(Drawing& d, const std::string& title, const std::string& yLabel, double y0,
               double y1, int legendRows) {
  const double W = d.width(), H = d.height();
  // Title, legend rows, then the y axis' label on a line of its own above the plot.
  const Frame f{80, 60.0 + 22 * legendRows, W - 100, H - (126.0 + 22 * legendRows), y0, y1};
  d.text(title, W / 2, 26, kTitle, Align::Centre, kInk);
  const double step = tickStep(y1 - y0, 5);
  for (double v = std::ceil(y0 / step) * step; v <= y1 + 1e-9; v += step) {
    const double y = f.toY(v);
    d.line(f.x, y, f.x + f.w, y, kGrid, 1);
    d.text(axisTickLabel(v, step), f.x - 8, y + 4.5, kLabel, Align::Right, kInk);
  }
  d.line(f.x, f.y, f.x, f.y + f.h, kInk, 1);
  d.line(f.x, f.y + f.h, f.x + f.w, f.y + f.h, kInk, 1);
  d.text(yLabel, 8, f.y - 10, kLabel, Align::Left, kInk);
  return f;
}

Colour colourOf(const std::vector<Colour>& colours, size_t i) {
  return i < colours.size() ? colours[i] : seriesColour(i);
}

void drawLegend(Drawing& d, const std::vector<std::string>& labels,
                const std::vector<Colour>& colours, double top) {
  double x = 80;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double w = textWidth(labels[i], kLabel);
    if (x + w + 40 > d.width()) break;
    d.fillRect(x, top - 10, 14, 12, colourOf(colours, i));
    d.text(labels[i], x + 20, top, kLabel, Align::Left, kInk);
    x += w + 44;
  }
}

// One bar of a group, its error bar and its bases' means.
void drawBar(Drawing& d, const Frame& f, const BarChart& c, const BarGroup& group, size_t k,
             double x0, double x1) {
  const double v = group.values[k];
  if (!std::isfinite(v)) return;
  const double y = f.toY(std::clamp(v, c.yMin, c.yMax)), base = f.toY(std::max(c.yMin, 0.0));
  d.fillRect(x0, std::min(y, base), x1 - x0, std::fabs(base - y), colourOf(c.colours, k));
  const double e = k < group.errors.size() ? group.errors[k] : 0;
  if (e > 0 && std::isfinite(e)) {
    const double xc = (x0 + x1) / 2, ya = f.toY(std::clamp(v + e, c.yMin, c.yMax)),
                 yb = f.toY(std::clamp(v - e, c.yMin, c.yMax));
    d.line(xc, ya, xc, yb, kInk, 1);
    d.line(xc - 4, ya, xc + 4, ya, kInk, 1);
    d.line(xc - 4, yb, xc + 4, yb, kInk, 1);
  }
  // Each base's mean: a ring on the bar, spread across it so that equal values stay apart.
  if (k >= group.points.size()) return;
  const auto& pts = group.points[k];
  for (size_t i = 0; i < pts.size(); ++i) {
    if (!std::isfinite(pts[i])) continue;
    const double xp = pts.size() == 1
                          ? (x0 + x1) / 2
                          : x0 + (x1 - x0) * (i + 0.5) / static_cast<double>(pts.size());
    d.ring(xp, f.toY(std::clamp(pts[i], c.yMin, c.yMax)), 3, kWhite, kInk, 1);
  }
}

}  // namespace

std::string axisTickLabel(double v, double step) {
  int decimals = 0;
  while (decimals < 6 && std::fabs(step * std::pow(10.0, decimals) -
                                   std::round(step * std::pow(10.0, decimals))) > 1e-6)
    ++decimals;
  if (std::fabs(v) < step * 1e-6) v = 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::array<uint8_t, 3> seriesColour(size_t index) {
  static const std::array<uint8_t, 3> palette[] = {{153, 153, 153}, {86, 180, 233},  {230, 159, 0},
                                                   {0, 114, 178},   {204, 121, 167}, {0, 158, 115},
                                                   {213, 94, 0},    {240, 228, 66}};
  return palette[index % 8];
}

Drawing drawBarChart(const BarChart& c, int width, int height) {
  Drawing d(width, height);
  const Frame f = drawAxes(d, c.title, c.yLabel, c.yMin, c.yMax, 1);
  drawLegend(d, c.series, c.colours, 52);
  const size_t G = c.groups.size(), K = c.series.size();
  if (G == 0 || K == 0) return d;
  const double groupW = f.w / static_cast<double>(G), barW = groupW * 0.8 / static_cast<double>(K);
  for (size_t g = 0; g < G; ++g) {
    const auto& group = c.groups[g];
    const double left = f.x + g * groupW + groupW * 0.1;
    for (size_t k = 0; k < K && k < group.values.size(); ++k)
      drawBar(d, f, c, group, k, left + k * barW, left + (k + 1) * barW - 1);
    d.text(group.label, f.x + (g + 0.5) * groupW, f.y + f.h + 22, kLabel, Align::Centre, kInk);
  }
  for (size_t i = 0; i < c.referenceLines.size(); ++i) {
    const double r = c.referenceLines[i];
    if (r < c.yMin || r > c.yMax) continue;
    const double y = f.toY(r);
    d.line(f.x, y, f.x + f.w, y, kInk, 1, true);
    if (i < c.referenceLabels.size())  // named where it is drawn, not in the legend's row
      d.text(c.referenceLabels[i], f.x + f.w - 4, y - 6, kNote, Align::Right, kInk);
  }
  return d;
}

Drawing drawLineChart(const LineChart& c, int width, int height) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : c.series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i]))
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]), y0 = std::min(y0, s.y[i]),
        y1 = std::max(y1, s.y[i]);
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 - y0 < 1e-9 * std::max(1.0, std::fabs(y0))) y0 -= 1, y1 += 1;  // a constant series
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  Drawing d(width, height);
  const Frame f = drawAxes(d, c.title, c.yLabel, y0, y1, 1);
  std::vector<std::string> labels;
  std::vector<Colour> colours;
  for (size_t k = 0; k < c.series.size(); ++k) {
    labels.push_back(c.series[k].label);
    const auto& own = c.series[k].colour;
    colours.push_back(own == Colour{0, 0, 0} ? seriesColour(k) : own);
  }
  drawLegend(d, labels, colours, 52);
  const auto toX = [&](double x) { return f.x + (x - x0) / (x1 - x0) * f.w; };
  const double step = tickStep(x1 - x0, 5);
  for (double v = std::ceil(x0 / step) * step; v <= x1 + 1e-9; v += step)
    d.text(axisTickLabel(v, step), toX(v), f.y + f.h + 20, kLabel, Align::Centre, kInk);
  d.text(c.xLabel, f.x + f.w, f.y + f.h + 40, kLabel, Align::Right, kInk);
  for (size_t k = 0; k < c.series.size(); ++k) {
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < c.series[k].x.size(); ++i)
      if (std::isfinite(c.series[k].y[i]))
        pts.push_back({toX(c.series[k].x[i]), f.toY(c.series[k].y[i])});
    d.polyline(std::move(pts), colours[k], 2);
  }
  return d;
}

Drawing tileDrawings(const std::vector<Drawing>& drawings, int perRow) {
  double cw = 0, ch = 0;
  for (const auto& d : drawings) cw = std::max(cw, d.width()), ch = std::max(ch, d.height());
  const int n = static_cast<int>(drawings.size()), cols = std::min(perRow, n),
            rows = (n + perRow - 1) / std::max(1, perRow);
  Drawing out(cols * cw, rows * ch);
  for (int i = 0; i < n; ++i)
    out.place(drawings[static_cast<size_t>(i)], (i % perRow) * cw, (i / perRow) * ch);
  return out;
}

RgbImage renderBarChart(const BarChart& chart, int width, int height) {
  return rasterize(drawBarChart(chart, width, height));
}

RgbImage renderLineChart(const LineChart& chart, int width, int height) {
  return rasterize(drawLineChart(chart, width, height));
}

}  // namespace pivot
