// The SigLIP image processor as transformers runs it (SiglipImageProcessor): resize straight to
// the model's size with Pillow's resampling (its separable filters, widened when shrinking so they
// antialias, 22-bit fixed-point weights and an 8-bit image between the horizontal and vertical
// passes: what Image.resize does, which a plain bicubic cv::resize is not), then rescale and
// normalise. Torch-, Qt- and OpenCV-free; decoding the file is the caller's (visualization/).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pivot {

struct Rgb8 {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes a pixel
};

// Pillow's resampling filters, numbered as Image.Resampling (and preprocessor_config's "resample").
enum class Resample { Nearest = 0, Lanczos = 1, Bilinear = 2, Bicubic = 3, Box = 4, Hamming = 5 };

// Image.resize((width, height), resample) on an RGB image, reducing_gap None.
Rgb8 resizeLikePillow(const Rgb8& image, int width, int height, Resample filter);

struct ImageProcessorConfig {
  bool doResize = true;
  int width = 224, height = 224;
  Resample resample = Resample::Bicubic;
  bool doRescale = true;
  double rescaleFactor = 1.0 / 255.0;
  bool doNormalize = true;
  std::array<double, 3> mean{0.5, 0.5, 0.5}, std{0.5, 0.5, 0.5};
};

// preprocessor_config.json; errors name the file and field (a processor other than SigLIP's, a
// crop, an unknown filter).
ImageProcessorConfig imageProcessorConfigFromFile(const std::string& path);

// pixel_values of one image: (3, height, width) floats, channel-major.
std::vector<float> pixelValues(const Rgb8& image, const ImageProcessorConfig& config);

}  // namespace pivot
