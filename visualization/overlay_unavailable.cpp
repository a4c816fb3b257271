// Built instead of overlay.cpp where OpenCV is missing (the torch-only GPU build): the maps and
// scores work, rendering says clearly that it cannot. Writing an already rendered image as PDF
// needs no OpenCV.
#include <stdexcept>

#include "visualization/charts.h"
#include "visualization/image_pdf.h"
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
RgbImage renderFigure(const RgbImage&, const std::string&, const std::vector<FigurePanel>&,
                      const std::string&, const std::string&, const OverlayStyle&) {
  unavailable();
}
void saveImage(const RgbImage& image, const std::string& path) {
  if (path.size() > 4 && path.substr(path.size() - 4) == ".pdf")
    return writeImagePdf(path, image.width, image.height, image.rgb);
  unavailable();
}
void checkImageOutput(const std::string& path) {
  if (path.size() <= 4 || path.substr(path.size() - 4) != ".pdf") unavailable();
}
RgbImage loadImage(const std::string&, int, RgbImage*) { unavailable(); }
Rgb8 readRgb8(const std::string&) { unavailable(); }
std::array<uint8_t, 3> seriesColour(size_t) { return {128, 128, 128}; }
RgbImage renderBarChart(const BarChart&, int, int) { unavailable(); }
RgbImage renderLineChart(const LineChart&, int, int) { unavailable(); }
RgbImage tileImages(const std::vector<RgbImage>&, int) { unavailable(); }

}  // namespace pivot
