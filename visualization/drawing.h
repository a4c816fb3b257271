// A figure as a list of drawing operations (lines, rectangles, rings, text, images) in pixel
// coordinates, top-left origin, that three back ends turn into a file: PDF and SVG written here as
// true vector files (text as text in Helvetica, every mark a path, only images embedded as images)
// and PNG rasterised with OpenCV. One list drawn three ways keeps the report's PNG and PDF the
// same figure. No Qt, no OpenCV in this header.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/image_processor.h"

namespace pivot {

using RgbImage = Rgb8;  // (H, W, 3) row-major, core/data/image_processor.h
using Colour = std::array<uint8_t, 3>;

enum class Align { Left, Centre, Right };  // of text, relative to its anchor's x

struct DrawOp {
  enum class Kind { Line, Polyline, Rect, Ring, Text, Image } kind = Kind::Line;
  std::vector<std::pair<double, double>> points;  // Line: 2, Polyline: n, Rect/Image: corner+size
  Colour colour{};                                // stroke, fill or text colour
  Colour fill{};                                  // a ring's inside
  double width = 1;                               // stroke width; a ring's radius is `size`
  double size = 0;                                // text: font size (em, pixels); ring: radius
  bool dashed = false;
  Align align = Align::Left;
  std::string text;  // UTF-8
  int image = -1;    // index into Drawing::images()
};

class Drawing {
 public:
  Drawing(double width, double height);
  double width() const { return m_width; }
  double height() const { return m_height; }

  void line(double x0, double y0, double x1, double y1, Colour c, double width,
            bool dashed = false);
  void polyline(std::vector<std::pair<double, double>> points, Colour c, double width);
  void fillRect(double x, double y, double w, double h, Colour c);
  void ring(double cx, double cy, double radius, Colour fill, Colour stroke, double width);
  // `y` is the text's baseline; `size` its em size in pixels.
  void text(const std::string& s, double x, double y, double size, Align align, Colour c);
  void image(const RgbImage& im, double x, double y, double w, double h);
  // Everything `other` holds, shifted by (dx, dy): figures made of figures.
  void place(const Drawing& other, double dx, double dy);

  const std::vector<DrawOp>& ops() const { return m_ops; }
  const std::vector<RgbImage>& images() const { return m_images; }

 private:
  double m_width, m_height;
  std::vector<DrawOp> m_ops;
  std::vector<RgbImage> m_images;
};

// Width of `s` set in Helvetica at em size `size` (Adobe's metrics, WinAnsi encoding): what the
// layouts measure text with, so that every back end places it alike.
double textWidth(const std::string& s, double size);

std::string pdfOf(const Drawing& d);  // a one-page PDF, 1 pixel = 1 point
std::string svgOf(const Drawing& d);
// Through OpenCV at `oversample` times the size, downsampled for smooth edges. Throws where the
// build has no OpenCV.
RgbImage rasterize(const Drawing& d, int oversample = 2);
// By extension: .pdf and .svg as vector files, anything else OpenCV writes (.png, .jpg) raster.
// Throws naming the file.
void saveDrawing(const Drawing& d, const std::string& path);
bool isVectorPath(const std::string& path);  // .pdf or .svg
// Frames of one size as an animated PNG (APNG: played by browsers, still the first frame
// elsewhere), each shown `delayMs`, looping. Throws for no frames or frames of different sizes.
std::string apngOf(const std::vector<RgbImage>& frames, int delayMs);
// The CRC-32 a PNG chunk carries, of bytes [from, from + count): written into SVG's embedded PNGs
// and checked when a PNG is read.
uint32_t pngCrc32(const std::string& bytes, size_t from, size_t count);

}  // namespace pivot
