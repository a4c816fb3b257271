#include "visualization/charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/imgproc.hpp>

namespace pivot {
namespace {

constexpr int kScale = 2;  // drawn at 2x, then downsampled
const cv::Scalar kInk(40, 40, 40), kGrid(225, 225, 225), kWhite(255, 255, 255);

cv::Scalar bgr(const std::array<uint8_t, 3>& rgb) { return cv::Scalar(rgb[2], rgb[1], rgb[0]); }

void text(cv::Mat& m, const std::string& s, cv::Point at, double size, int align = 0,
          const cv::Scalar& colour = kInk, int thickness = 1) {
  int base = 0;
  const auto box =
      cv::getTextSize(s, cv::FONT_HERSHEY_SIMPLEX, size * kScale, thickness * kScale, &base);
  at.x -= align == 0 ? 0 : align == 1 ? box.width / 2 : box.width;  // 0 left, 1 centre, 2 right
  cv::putText(m, s, at, cv::FONT_HERSHEY_SIMPLEX, size * kScale, colour, thickness * kScale,
              cv::LINE_AA);
}

RgbImage finish(const cv::Mat& big, int width, int height) {
  cv::Mat small, rgb;
  cv::resize(big, small, cv::Size(width, height), 0, 0, cv::INTER_AREA);
  cv::cvtColor(small, rgb, cv::COLOR_BGR2RGB);
  RgbImage out;
  out.width = width;
  out.height = height;
  out.rgb.assign(rgb.data, rgb.data + static_cast<size_t>(rgb.total() * 3));
  return out;
}

// Nice round tick spacing for a range.
double tickStep(double span, int wanted) {
  const double raw = span / std::max(1, wanted);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double f : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= f * mag) return f * mag;
  return 10 * mag;
}

struct Frame {
  cv::Rect plot;
  double y0, y1;
  int toY(double v) const {
    return plot.y + plot.height - static_cast<int>(std::lround((v - y0) / (y1 - y0) * plot.height));
  }
};

Frame drawAxes(cv::Mat& m, const std::string& title, const std::string& yLabel, double y0,
               double y1, int legendRows) {
  const int W = m.cols, H = m.rows;
  // Title, legend rows, then the y axis' label on a line of its own above the plot.
  Frame f{cv::Rect(80 * kScale, (60 + 22 * legendRows) * kScale, W - 100 * kScale,
                   H - (126 + 22 * legendRows) * kScale),
          y0, y1};
  text(m, title, {W / 2, 26 * kScale}, 0.6, 1, kInk, 1);
  const double step = tickStep(y1 - y0, 5);
  for (double v = std::ceil(y0 / step) * step; v <= y1 + 1e-9; v += step) {
    const int y = f.toY(v);
    cv::line(m, {f.plot.x, y}, {f.plot.x + f.plot.width, y}, kGrid, kScale);
    text(m, axisTickLabel(v, step), {f.plot.x - 8 * kScale, y + 5 * kScale}, 0.45, 2);
  }
  cv::line(m, {f.plot.x, f.plot.y}, {f.plot.x, f.plot.y + f.plot.height}, kInk, kScale);
  cv::line(m, {f.plot.x, f.plot.y + f.plot.height},
           {f.plot.x + f.plot.width, f.plot.y + f.plot.height}, kInk, kScale);
  text(m, yLabel, {8 * kScale, f.plot.y - 10 * kScale}, 0.45, 0);
  return f;
}

std::array<uint8_t, 3> colourOf(const std::vector<std::array<uint8_t, 3>>& colours, size_t i) {
  return i < colours.size() ? colours[i] : seriesColour(i);
}

void drawLegend(cv::Mat& m, const std::vector<std::string>& labels,
                const std::vector<std::array<uint8_t, 3>>& colours, int top) {
  int x = 80 * kScale;
  for (size_t i = 0; i < labels.size(); ++i) {
    int base = 0;
    const int w =
        cv::getTextSize(labels[i], cv::FONT_HERSHEY_SIMPLEX, 0.45 * kScale, kScale, &base).width;
    if (x + w + 40 * kScale > m.cols) break;
    cv::rectangle(m, cv::Rect(x, top - 10 * kScale, 14 * kScale, 12 * kScale),
                  bgr(colourOf(colours, i)), cv::FILLED);
    text(m, labels[i], {x + 20 * kScale, top}, 0.45);
    x += w + 44 * kScale;
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

RgbImage renderBarChart(const BarChart& c, int width, int height) {
  cv::Mat m(height * kScale, width * kScale, CV_8UC3, kWhite);
  const Frame f = drawAxes(m, c.title, c.yLabel, c.yMin, c.yMax, 1);
  drawLegend(m, c.series, c.colours, 52 * kScale);
  const int G = static_cast<int>(c.groups.size()), K = static_cast<int>(c.series.size());
  if (G == 0 || K == 0) return finish(m, width, height);
  const double groupW = static_cast<double>(f.plot.width) / G;
  const double barW = groupW * 0.8 / K;
  for (int g = 0; g < G; ++g) {
    const auto& group = c.groups[static_cast<size_t>(g)];
    const double left = f.plot.x + g * groupW + groupW * 0.1;
    for (int k = 0; k < K && k < static_cast<int>(group.values.size()); ++k) {
      const double v = group.values[static_cast<size_t>(k)];
      if (!std::isfinite(v)) continue;
      const int x0 = static_cast<int>(left + k * barW),
                x1 = static_cast<int>(left + (k + 1) * barW) - kScale;
      const int y = f.toY(std::clamp(v, c.yMin, c.yMax)), base = f.toY(std::max(c.yMin, 0.0));
      cv::rectangle(m, cv::Point(x0, std::min(y, base)), cv::Point(x1, std::max(y, base)),
                    bgr(colourOf(c.colours, static_cast<size_t>(k))), cv::FILLED);
      const double e =
          k < static_cast<int>(group.errors.size()) ? group.errors[static_cast<size_t>(k)] : 0;
      if (e > 0 && std::isfinite(e)) {
        const int xc = (x0 + x1) / 2, ya = f.toY(std::clamp(v + e, c.yMin, c.yMax)),
                  yb = f.toY(std::clamp(v - e, c.yMin, c.yMax));
        cv::line(m, {xc, ya}, {xc, yb}, kInk, kScale, cv::LINE_AA);
        cv::line(m, {xc - 4 * kScale, ya}, {xc + 4 * kScale, ya}, kInk, kScale, cv::LINE_AA);
        cv::line(m, {xc - 4 * kScale, yb}, {xc + 4 * kScale, yb}, kInk, kScale, cv::LINE_AA);
      }
      // Each base's mean: a ring on the bar, spread across it so that equal values stay apart.
      if (k < static_cast<int>(group.points.size())) {
        const auto& pts = group.points[static_cast<size_t>(k)];
        for (size_t i = 0; i < pts.size(); ++i) {
          if (!std::isfinite(pts[i])) continue;
          const int xp =
              pts.size() == 1
                  ? (x0 + x1) / 2
                  : x0 + static_cast<int>((x1 - x0) * (i + 0.5) / static_cast<double>(pts.size()));
          const cv::Point at(xp, f.toY(std::clamp(pts[i], c.yMin, c.yMax)));
          cv::circle(m, at, 3 * kScale, cv::Scalar(255, 255, 255), cv::FILLED, cv::LINE_AA);
          cv::circle(m, at, 3 * kScale, kInk, kScale, cv::LINE_AA);
        }
      }
    }
    text(m, group.label,
         {static_cast<int>(f.plot.x + (g + 0.5) * groupW), f.plot.y + f.plot.height + 22 * kScale},
         0.45, 1);
  }
  for (size_t i = 0; i < c.referenceLines.size(); ++i) {
    const double r = c.referenceLines[i];
    if (r < c.yMin || r > c.yMax) continue;
    const int y = f.toY(r);
    for (int x = f.plot.x; x < f.plot.x + f.plot.width; x += 12 * kScale)
      cv::line(m, {x, y}, {std::min(x + 6 * kScale, f.plot.x + f.plot.width), y}, kInk, kScale);
    if (i < c.referenceLabels.size())  // named where it is drawn, not in the legend's row
      text(m, c.referenceLabels[i], {f.plot.x + f.plot.width - 4 * kScale, y - 6 * kScale}, 0.4, 2);
  }
  return finish(m, width, height);
}

RgbImage renderLineChart(const LineChart& c, int width, int height) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : c.series)
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.y[i]))
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]), y0 = std::min(y0, s.y[i]),
        y1 = std::max(y1, s.y[i]);
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad, y1 += pad;
  cv::Mat m(height * kScale, width * kScale, CV_8UC3, kWhite);
  const Frame f = drawAxes(m, c.title, c.yLabel, y0, y1, 1);
  std::vector<std::string> labels;
  std::vector<std::array<uint8_t, 3>> colours;
  for (size_t k = 0; k < c.series.size(); ++k) {
    labels.push_back(c.series[k].label);
    const auto& own = c.series[k].colour;
    colours.push_back(own == std::array<uint8_t, 3>{0, 0, 0} ? seriesColour(k) : own);
  }
  drawLegend(m, labels, colours, 52 * kScale);
  auto toX = [&](double x) {
    return f.plot.x + static_cast<int>(std::lround((x - x0) / (x1 - x0) * f.plot.width));
  };
  const double step = tickStep(x1 - x0, 5);
  for (double v = std::ceil(x0 / step) * step; v <= x1 + 1e-9; v += step)
    text(m, axisTickLabel(v, step), {toX(v), f.plot.y + f.plot.height + 20 * kScale}, 0.45, 1);
  text(m, c.xLabel, {f.plot.x + f.plot.width, f.plot.y + f.plot.height + 40 * kScale}, 0.45, 2);
  for (size_t k = 0; k < c.series.size(); ++k) {
    std::vector<cv::Point> pts;
    for (size_t i = 0; i < c.series[k].x.size(); ++i)
      if (std::isfinite(c.series[k].y[i]))
        pts.push_back({toX(c.series[k].x[i]), f.toY(c.series[k].y[i])});
    if (pts.size() > 1) cv::polylines(m, pts, false, bgr(colours[k]), 2 * kScale, cv::LINE_AA);
  }
  return finish(m, width, height);
}

RgbImage tileImages(const std::vector<RgbImage>& images, int perRow) {
  if (images.empty()) return {};
  int cw = 0, ch = 0;
  for (const auto& im : images) cw = std::max(cw, im.width), ch = std::max(ch, im.height);
  const int n = static_cast<int>(images.size()), cols = std::min(perRow, n),
            rows = (n + perRow - 1) / perRow;
  RgbImage out;
  out.width = cols * cw;
  out.height = rows * ch;
  out.rgb.assign(static_cast<size_t>(out.width) * out.height * 3, 255);
  for (int i = 0; i < n; ++i) {
    const auto& im = images[static_cast<size_t>(i)];
    const int ox = (i % perRow) * cw, oy = (i / perRow) * ch;
    for (int y = 0; y < im.height; ++y)
      std::copy_n(im.rgb.begin() + static_cast<long>(y) * im.width * 3, im.width * 3,
                  out.rgb.begin() + (static_cast<long>(oy + y) * out.width + ox) * 3);
  }
  return out;
}

}  // namespace pivot
