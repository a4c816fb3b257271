#include "visualization/overlay.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "config/vocabulary.h"
#include "visualization/drawing.h"

namespace pivot {
namespace {

int colormapCode(const std::string& colormap) {
  switch (colormapFromName(colormap)) {  // throws naming the value and the choices
    case Colormap::Jet:
      return cv::COLORMAP_JET;
    case Colormap::Viridis:
      return cv::COLORMAP_VIRIDIS;
    case Colormap::Magma:
      return cv::COLORMAP_MAGMA;
    case Colormap::Turbo:
      return cv::COLORMAP_TURBO;
  }
  return cv::COLORMAP_JET;
}

cv::Mat toMat(const RgbImage& image) {  // BGR copy
  cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

RgbImage fromMat(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  RgbImage out;
  out.width = rgb.cols;
  out.height = rgb.rows;
  out.rgb.assign(rgb.data, rgb.data + static_cast<size_t>(rgb.total() * 3));
  return out;
}

cv::Mat overlayMat(const RgbImage& image, const std::vector<float>& map, int gh, int gw,
                   const OverlayStyle& s) {
  cv::Mat base;
  cv::resize(toMat(image), base, cv::Size(s.panelSize, s.panelSize), 0, 0, cv::INTER_NEAREST);
  if (map.empty()) return base;
  cv::Mat grid(gh, gw, CV_32F, const_cast<float*>(map.data())), up, bytes, colours;
  cv::resize(grid, up, base.size(), 0, 0, cv::INTER_LINEAR);  // bilinear upsampling
  up.convertTo(bytes, CV_8U, 255.0);
  cv::applyColorMap(bytes, colours, colormapCode(s.colormap));
  cv::Mat out;
  cv::addWeighted(base * s.darken, 1.0 - s.alpha, colours, s.alpha, 0, out);
  if (s.colourBar) {
    // A ramp from 1 (top) to 0 (bottom) with tick labels at 0, 0.5 and 1 on a white strip: the map
    // is min-max normalised, so these are shares of the map's range.
    cv::Mat ramp(s.panelSize, 12, CV_8U);
    for (int y = 0; y < s.panelSize; ++y)
      ramp.row(y).setTo(255 - y * 255 / std::max(1, s.panelSize - 1));
    cv::Mat bar;
    cv::applyColorMap(ramp, bar, colormapCode(s.colormap));
    cv::Mat labels(s.panelSize, 30, CV_8UC3, cv::Scalar(255, 255, 255));
    const double scale = 0.35;
    for (const auto& [value, text] :
         {std::pair<double, const char*>{1.0, "1"}, {0.5, ".5"}, {0.0, "0"}}) {
      const int y = static_cast<int>((1.0 - value) * (s.panelSize - 1));
      cv::line(labels, cv::Point(0, y), cv::Point(4, y), cv::Scalar(40, 40, 40), 1);
      int base = 0;
      const auto size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &base);
      const int ty = std::clamp(y + size.height / 2, size.height + 1, s.panelSize - 2);
      cv::putText(labels, text, cv::Point(7, ty), cv::FONT_HERSHEY_SIMPLEX, scale,
                  cv::Scalar(40, 40, 40), 1, cv::LINE_AA);
    }
    cv::hconcat(std::vector<cv::Mat>{out, bar, labels}, out);
  }
  return out;
}

// A damaged PNG makes libpng print its own line to stderr before OpenCV returns nothing; walking
// the chunks first (length, a four-letter type, the CRC of each) names the damage and where it is
// instead. Other formats pass untouched.
void checkPngChunks(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const std::string signature = "\x89PNG\r\n\x1a\n";
  if (bytes.compare(0, signature.size(), signature) != 0) return;
  const auto be32 = [&](size_t at) {
    return static_cast<uint32_t>(static_cast<uint8_t>(bytes[at])) << 24 |
           static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 1])) << 16 |
           static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 2])) << 8 |
           static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 3]));
  };
  const auto damaged = [&](size_t at, const std::string& why) {
    return std::runtime_error(path + ": damaged PNG: the chunk at byte " + std::to_string(at) +
                              " " + why);
  };
  for (size_t at = signature.size();;) {
    if (at + 12 > bytes.size()) throw damaged(at, "is cut off (the file ends before IEND)");
    const uint32_t length = be32(at);
    const std::string type = bytes.substr(at + 4, 4);
    if (!std::all_of(type.begin(), type.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }))
      throw damaged(at, "has no valid type");
    if (length > bytes.size() - at - 12)
      throw damaged(at, "(" + type + ") is longer than the rest of the file");
    if (pngCrc32(bytes, at + 4, 4 + length) != be32(at + 8 + length))
      throw damaged(at, "(" + type + ") fails its CRC check");
    if (type == "IEND") return;
    at += 12 + length;
  }
}

// Checked before OpenCV reads: it would print a warning (or libpng a line) of its own first.
void checkImageFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw std::runtime_error(path + (std::filesystem::exists(path, ec) ? ": not an image file"
                                                                       : ": no such image file"));
  checkPngChunks(path);
}

}  // namespace

bool renderingAvailable() { return true; }

RgbImage renderOverlay(const RgbImage& image, const std::vector<float>& map, int gh, int gw,
                       const OverlayStyle& style) {
  return fromMat(overlayMat(image, map, gh, gw, style));
}

std::vector<std::array<uint8_t, 3>> colormapColours(const std::string& colormap, int n) {
  cv::Mat ramp(1, n, CV_8U), bgr;
  for (int i = 0; i < n; ++i)
    ramp.at<uint8_t>(0, i) = static_cast<uint8_t>(i * 255 / std::max(1, n - 1));
  cv::applyColorMap(ramp, bgr, colormapCode(colormap));
  std::vector<std::array<uint8_t, 3>> colours(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto c = bgr.at<cv::Vec3b>(0, i);
    colours[static_cast<size_t>(i)] = {c[2], c[1], c[0]};
  }
  return colours;
}

Drawing drawFigure(const RgbImage& image, const std::string& question,
                   const std::vector<FigurePanel>& panels, const std::string& chosen,
                   const std::string& rejected, const OverlayStyle& style,
                   const std::string& note) {
  const double gap = 10, top = 44, titleH = 22, bottom = note.empty() ? 52 : 70;
  const double side = style.panelSize, bar = style.colourBar ? 46 : 0;
  OverlayStyle plain = style;
  plain.colourBar = false;  // one bar for the row, drawn as paths beside the last panel
  const double width = gap + (side + gap) * static_cast<double>(panels.size() + 1) + bar;
  Drawing d(width, top + titleH + side + bottom);
  const Colour ink{20, 20, 20}, label{40, 40, 40};
  d.text("Q: " + question, width / 2, 28, 17, Align::Centre, ink);
  double x = gap;
  const auto panel = [&](const RgbImage& tile, const std::string& title) {
    d.text(title, x + side / 2, top + 14, 12.5, Align::Centre, label);
    d.image(tile, x, top + titleH, side, side);
    x += side + gap;
  };
  panel(fromMat(overlayMat(image, {}, 0, 0, plain)), "image");
  for (const auto& p : panels)
    panel(fromMat(overlayMat(image, p.map, p.gridH, p.gridW, plain)), p.title);
  if (style.colourBar) {
    // The maps are min-max normalised: the bar's 0 and 1 are each map's own minimum and maximum.
    const auto colours = colormapColours(style.colormap, 64);
    const double y0 = top + titleH, step = side / 64.0;
    for (size_t i = 0; i < colours.size(); ++i)
      d.fillRect(x, y0 + side - (i + 1) * step, 12, step + 0.5, colours[i]);
    for (const auto& [value, text] :
         {std::pair<double, const char*>{1.0, "1"}, {0.5, ".5"}, {0.0, "0"}}) {
      const double y = y0 + (1.0 - value) * side;
      d.line(x + 12, y, x + 16, y, label, 1);
      d.text(text, x + 18, std::clamp(y + 4, y0 + 9, y0 + side), 11, Align::Left, label);
    }
  }
  const double y = top + titleH + side;
  d.text("chosen: " + chosen, width / 2, y + 20, 14, Align::Centre, ink);
  if (!rejected.empty()) d.text("rejected: " + rejected, width / 2, y + 42, 14, Align::Centre, ink);
  if (!note.empty()) d.text(note, width / 2, y + 62, 11, Align::Centre, Colour{90, 90, 90});
  return d;
}

RgbImage renderFigure(const RgbImage& image, const std::string& question,
                      const std::vector<FigurePanel>& panels, const std::string& chosen,
                      const std::string& rejected, const OverlayStyle& style) {
  return rasterize(drawFigure(image, question, panels, chosen, rejected, style));
}

void checkImageOutput(const std::string& path) {
  if (isVectorPath(path)) return;
  if (!cv::haveImageWriter(path))
    throw std::runtime_error(path +
                             ": no image format has this extension (use .png, .jpg, .pdf or .svg)");
}

void saveImage(const RgbImage& image, const std::string& path) {
  checkImageOutput(path);
  if (isVectorPath(path)) {  // the image alone on a page of its size
    Drawing page(image.width, image.height);
    page.image(image, 0, 0, image.width, image.height);
    return saveDrawing(page, path);
  }
  if (!cv::imwrite(path, toMat(image))) throw std::runtime_error(path + ": cannot write image");
}

RgbImage loadImage(const std::string& path, int size, RgbImage* original) {
  checkImageFile(path);
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  if (bgr.empty())
    throw std::runtime_error(path + ": cannot read image (not a format OpenCV decodes)");
  if (original) {
    original->width = bgr.cols;
    original->height = bgr.rows;
  }
  cv::Mat resized;
  cv::resize(bgr, resized, cv::Size(size, size), 0, 0, cv::INTER_AREA);
  return fromMat(resized);
}

Rgb8 readRgb8(const std::string& path) {
  checkImageFile(path);
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR | cv::IMREAD_ANYDEPTH);  // applies EXIF
  if (bgr.empty())
    throw std::runtime_error(path + ": cannot read image (not a format OpenCV decodes)");
  if (bgr.depth() == CV_16U) {
    cv::Mat eight(bgr.size(), CV_8UC3);
    for (int y = 0; y < bgr.rows; ++y)
      for (int x = 0; x < bgr.cols * 3; ++x)
        eight.ptr<uint8_t>(y)[x] = static_cast<uint8_t>(bgr.ptr<uint16_t>(y)[x] >> 8);
    bgr = eight;
  } else if (bgr.depth() != CV_8U) {
    throw std::runtime_error(path + ": unsupported sample depth (8 or 16 bits per channel)");
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  Rgb8 out;
  out.width = rgb.cols;
  out.height = rgb.rows;
  out.rgb.assign(rgb.data, rgb.data + rgb.total() * 3);
  return out;
}

}  // namespace pivot
