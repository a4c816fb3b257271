// Built instead of overlay.cpp where OpenCV is missing (the torch-only GPU build): the maps and
// scores work, rendering says clearly that it cannot. Vector figures (charts as PDF or SVG) and an
// already rendered image as PDF need no OpenCV.
#include <stdexcept>

#include "visualization/drawing.h"
#include "visualization/overlay.h"

namespace pivot {
namespace {
[[noreturn]] void unavailable() {
  throw std::runtime_error("image rendering needs OpenCV; this build has none");
}
}  // namespace

bool renderingAvailable() { return false; }
RgbImage renderOverlay(const RgbImage&, const std::vector<float>&, int, int, const OverlayStyle&) {
  unavailable();
}
std::vector<std::array<uint8_t, 3>> colormapColours(const std::string&, int) { unavailable(); }
Drawing drawFigure(const RgbImage&, const std::string&, const std::vector<FigurePanel>&,
                   const std::string&, const std::string&, const OverlayStyle&,
                   const std::string&) {
  unavailable();
}
RgbImage renderFigure(const RgbImage&, const std::string&, const std::vector<FigurePanel>&,
                      const std::string&, const std::string&, const OverlayStyle&) {
  unavailable();
}
RgbImage rasterize(const Drawing&, int) { unavailable(); }
void saveImage(const RgbImage& image, const std::string& path) {
  if (!isVectorPath(path)) unavailable();
  Drawing page(image.width, image.height);
  page.image(image, 0, 0, image.width, image.height);
  saveDrawing(page, path);
}
void checkImageOutput(const std::string& path) {
  if (!isVectorPath(path)) unavailable();
}
RgbImage loadImage(const std::string&, int, RgbImage*) { unavailable(); }
Rgb8 readRgb8(const std::string&) { unavailable(); }

}  // namespace pivot
