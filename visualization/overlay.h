// Rendering attribution maps over images (OpenCV): colormap, alpha, darkened background, bilinear
// upsampling, colour bar; and the paper's figure layout: the question on top, then
// image | map under checkpoint A | map under checkpoint B | ..., the answers under the row.
// Built only where OpenCV is found (PIVOT_HAVE_OPENCV); no Qt.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "visualization/drawing.h"

namespace pivot {

struct OverlayStyle {
  std::string colormap = "jet";  // jet | viridis | magma | turbo
  double alpha = 0.6;            // map opacity (paper: 0.6)
  double darken = 0.5;           // background brightness factor under the map
  bool colourBar = false;
  int panelSize = 256;  // output side of each panel, pixels
};

struct FigurePanel {
  std::string title;       // e.g. "DPO @ step 600  mass 0.71"
  std::vector<float> map;  // gh x gw in [0, 1]; empty = the plain image
  int gridH = 0, gridW = 0;
};

// One map over one image, upsampled bilinearly to panelSize.
RgbImage renderOverlay(const RgbImage& image, const std::vector<float>& map, int gh, int gw,
                       const OverlayStyle& style);

// The colormap's colours from 0 to 1 (n of them, RGB): what a colour bar drawn elsewhere shows.
std::vector<std::array<uint8_t, 3>> colormapColours(const std::string& colormap, int n = 256);

// The figure: question on top, image then one panel per map (and the colormap's bar when the
// style asks), chosen and rejected answers below, then `note` (what the maps are: method, target).
// Text and bar are vector; the panels are images.
Drawing drawFigure(const RgbImage& image, const std::string& question,
                   const std::vector<FigurePanel>& panels, const std::string& chosen,
                   const std::string& rejected, const OverlayStyle& style,
                   const std::string& note = "");
RgbImage renderFigure(const RgbImage& image, const std::string& question,
                      const std::vector<FigurePanel>& panels, const std::string& chosen,
                      const std::string& rejected, const OverlayStyle& style);

// PNG by extension .png, or a page of the image's size holding it (.pdf, .svg). Throws naming the
// file.
void saveImage(const RgbImage& image, const std::string& path);
// Throws naming the file when saveImage could not write an image under that name (an extension
// no format has): commands check their --out before computing what they would save.
void checkImageOutput(const std::string& path);
// Any format OpenCV reads, resized square; `original` (when given) receives the file's own size.
// A missing or unreadable file is one error naming it.
RgbImage loadImage(const std::string& path, int size, RgbImage* original = nullptr);
// A file as Pillow-then-convert("RGB") sees it, for the SigLIP processor: EXIF orientation applied
// (transformers' load_image does), grayscale replicated, alpha dropped, 16-bit samples reduced to
// their high byte. Errors name the file.
Rgb8 readRgb8(const std::string& path);

bool renderingAvailable();  // false when built without OpenCV

}  // namespace pivot
