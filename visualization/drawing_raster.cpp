// Drawing's raster back end (OpenCV): every operation drawn anti-aliased at `oversample` times the
// size, then downsampled. Text is OpenCV's Hershey font scaled to Helvetica's cap height and never
// wider than Helvetica would set it, so the layouts (measured with textWidth) hold in PNG too.
#include <opencv2/imgproc.hpp>
#include <algorithm>
#include <cmath>

#include "visualization/drawing.h"

namespace pivot {
namespace {

cv::Scalar bgr(const Colour& c) { return cv::Scalar(c[2], c[1], c[0]); }

void drawText(cv::Mat& m, const DrawOp& op, double k) {
  constexpr int font = cv::FONT_HERSHEY_SIMPLEX;
  int base = 0;
  const cv::Size unit = cv::getTextSize(op.text, font, 1.0, 1, &base);
  const double capHeight = 0.718 * op.size * k;  // Helvetica's cap height is 0.718 em
  const double wanted = textWidth(op.text, op.size) * k;
  const double scale =
      std::min(capHeight / std::max(1, unit.height), wanted / std::max(1, unit.width));
  const int thickness = std::max(1, static_cast<int>(std::lround(k * op.size / 14.0)));
  const double width = unit.width * scale;
  double x = op.points[0].first * k;
  if (op.align == Align::Centre) x -= width / 2;
  if (op.align == Align::Right) x -= width;
  cv::putText(m, op.text,
              cv::Point(static_cast<int>(std::lround(x)),
                        static_cast<int>(std::lround(op.points[0].second * k))),
              font, scale, bgr(op.colour), thickness, cv::LINE_AA);
}

void drawDashed(cv::Mat& m, cv::Point2d a, cv::Point2d b, const cv::Scalar& c, int thickness,
                double dash) {
  const double length = cv::norm(b - a);
  if (length <= 0) return;
  const cv::Point2d step = (b - a) / length;
  for (double t = 0; t < length; t += 2 * dash) {
    const cv::Point2d from = a + step * t, to = a + step * std::min(length, t + dash);
    cv::line(m, from, to, c, thickness, cv::LINE_AA);
  }
}

}  // namespace

RgbImage rasterize(const Drawing& d, int oversample) {
  const double k = std::max(1, oversample);
  const int W = static_cast<int>(std::lround(d.width())),
            H = static_cast<int>(std::lround(d.height()));
  cv::Mat m(static_cast<int>(H * k), static_cast<int>(W * k), CV_8UC3, cv::Scalar(255, 255, 255));
  const auto at = [&](const std::pair<double, double>& p) {
    return cv::Point2d(p.first * k, p.second * k);
  };
  for (const DrawOp& op : d.ops()) {
    const int thickness = std::max(1, static_cast<int>(std::lround(op.width * k)));
    switch (op.kind) {
      case DrawOp::Kind::Line:
        if (op.dashed)
          drawDashed(m, at(op.points[0]), at(op.points[1]), bgr(op.colour), thickness, 6 * k);
        else
          cv::line(m, at(op.points[0]), at(op.points[1]), bgr(op.colour), thickness, cv::LINE_AA);
        break;
      case DrawOp::Kind::Polyline: {
        std::vector<cv::Point> pts;
        for (const auto& p : op.points) pts.push_back(at(p));
        cv::polylines(m, pts, false, bgr(op.colour), thickness, cv::LINE_AA);
        break;
      }
      case DrawOp::Kind::Rect: {
        const cv::Point2d a = at(op.points[0]);
        const cv::Point2d b = a + cv::Point2d(op.points[1].first * k, op.points[1].second * k);
        cv::rectangle(
            m, cv::Point(static_cast<int>(std::lround(a.x)), static_cast<int>(std::lround(a.y))),
            cv::Point(static_cast<int>(std::lround(b.x)) - 1,
                      static_cast<int>(std::lround(b.y)) - 1),
            bgr(op.colour), cv::FILLED);
        break;
      }
      case DrawOp::Kind::Ring: {
        const cv::Point c = at(op.points[0]);
        const int r = static_cast<int>(std::lround(op.size * k));
        cv::circle(m, c, r, bgr(op.fill), cv::FILLED, cv::LINE_AA);
        cv::circle(m, c, r, bgr(op.colour), thickness, cv::LINE_AA);
        break;
      }
      case DrawOp::Kind::Text:
        drawText(m, op, k);
        break;
      case DrawOp::Kind::Image: {
        const RgbImage& im = d.images()[static_cast<size_t>(op.image)];
        cv::Mat rgb(im.height, im.width, CV_8UC3, const_cast<uint8_t*>(im.rgb.data())), scaled;
        const cv::Rect where(static_cast<int>(std::lround(op.points[0].first * k)),
                             static_cast<int>(std::lround(op.points[0].second * k)),
                             static_cast<int>(std::lround(op.points[1].first * k)),
                             static_cast<int>(std::lround(op.points[1].second * k)));
        const cv::Rect inside = where & cv::Rect(0, 0, m.cols, m.rows);
        if (inside.empty()) break;
        cv::resize(rgb, scaled, where.size(), 0, 0, cv::INTER_NEAREST);
        cv::cvtColor(scaled, scaled, cv::COLOR_RGB2BGR);
        scaled(inside - where.tl()).copyTo(m(inside));
        break;
      }
    }
  }
  cv::Mat small, rgb;
  cv::resize(m, small, cv::Size(W, H), 0, 0, cv::INTER_AREA);
  cv::cvtColor(small, rgb, cv::COLOR_BGR2RGB);
  RgbImage out;
  out.width = W;
  out.height = H;
  out.rgb.assign(rgb.data, rgb.data + static_cast<size_t>(rgb.total() * 3));
  return out;
}

}  // namespace pivot
