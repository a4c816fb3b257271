#include "data/image_processor.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace pivot {
namespace {

// Pillow's filters (src/libImaging/Resample.c): support in input pixels at scale 1, and the kernel.
struct Filter {
  double support;
  double (*kernel)(double);
};

double boxKernel(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }
double bilinearKernel(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
double hammingKernel(double x) {
  x = std::fabs(x);
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x *= M_PI;
  return std::sin(x) / x * (0.54 + 0.46 * std::cos(x));
}
double bicubicKernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}
double lanczosKernel(double x) { return x > -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0; }

Filter filterOf(Resample r) {
  switch (r) {
    case Resample::Box:
      return {0.5, boxKernel};
    case Resample::Bilinear:
      return {1.0, bilinearKernel};
    case Resample::Hamming:
      return {1.0, hammingKernel};
    case Resample::Bicubic:
      return {2.0, bicubicKernel};
    case Resample::Lanczos:
      return {3.0, lanczosKernel};
    case Resample::Nearest:
      break;
  }
  throw std::logic_error("filterOf: nearest has no kernel");
}

constexpr int kPrecisionBits = 32 - 8 - 2;

// For each output pixel: the first input pixel, how many, and their fixed-point weights.
struct Coefficients {
  int taps = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // out x taps
};

Coefficients coefficients(int inSize, int outSize, const Filter& filter) {
  const double scale = static_cast<double>(inSize) / outSize;
  const double filterScale = std::max(scale, 1.0);  // widened when shrinking: antialiasing
  const double support = filter.support * filterScale;
  Coefficients c;
  c.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(outSize));
  c.count.resize(static_cast<size_t>(outSize));
  c.weights.assign(static_cast<size_t>(outSize) * static_cast<size_t>(c.taps), 0);
  std::vector<double> w(static_cast<size_t>(c.taps));
  for (int xx = 0; xx < outSize; ++xx) {
    const double center = (xx + 0.5) * scale;
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), inSize) - xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[static_cast<size_t>(x)] = filter.kernel((x + xmin - center + 0.5) / filterScale);
      total += w[static_cast<size_t>(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      const double k = total != 0.0 ? w[static_cast<size_t>(x)] / total : w[static_cast<size_t>(x)];
      // Rounded half away from zero, as Pillow's normalize_coeffs_8bpc.
      c.weights[static_cast<size_t>(xx * c.taps + x)] = static_cast<int32_t>(
          k < 0 ? -0.5 + k * (1 << kPrecisionBits) : 0.5 + k * (1 << kPrecisionBits));
    }
    c.first[static_cast<size_t>(xx)] = xmin;
    c.count[static_cast<size_t>(xx)] = xmax;
  }
  return c;
}

uint8_t clip8(int64_t sum) {
  const int64_t v = sum >> kPrecisionBits;
  return static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255));
}

// One pass along x (horizontal) or y (vertical), 8 bits in and out.
Rgb8 resamplePass(const Rgb8& in, int outSize, const Filter& filter, bool horizontal) {
  const int inSize = horizontal ? in.width : in.height;
  const Coefficients c = coefficients(inSize, outSize, filter);
  Rgb8 out;
  out.width = horizontal ? outSize : in.width;
  out.height = horizontal ? in.height : outSize;
  out.rgb.resize(static_cast<size_t>(out.width) * static_cast<size_t>(out.height) * 3);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      const int o = horizontal ? x : y;
      const int32_t* k = &c.weights[static_cast<size_t>(o * c.taps)];
      for (int ch = 0; ch < 3; ++ch) {
        int64_t sum = int64_t{1} << (kPrecisionBits - 1);
        for (int t = 0; t < c.count[static_cast<size_t>(o)]; ++t) {
          const int src = c.first[static_cast<size_t>(o)] + t;
          const int sx = horizontal ? src : x, sy = horizontal ? y : src;
          sum +=
              static_cast<int64_t>(in.rgb[(static_cast<size_t>(sy) * static_cast<size_t>(in.width) +
                                           static_cast<size_t>(sx)) *
                                              3 +
                                          static_cast<size_t>(ch)]) *
              k[t];
        }
        out.rgb[(static_cast<size_t>(y) * static_cast<size_t>(out.width) + static_cast<size_t>(x)) *
                    3 +
                static_cast<size_t>(ch)] = clip8(sum);
      }
    }
  return out;
}

Rgb8 resizeNearest(const Rgb8& in, int width, int height) {
  Rgb8 out{width, height, std::vector<uint8_t>(static_cast<size_t>(width * height * 3))};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      // Pillow samples the source pixel under the output pixel's centre.
      const int sx = std::min(static_cast<int>((x + 0.5) * in.width / width), in.width - 1);
      const int sy = std::min(static_cast<int>((y + 0.5) * in.height / height), in.height - 1);
      std::copy_n(
          &in.rgb[(static_cast<size_t>(sy) * static_cast<size_t>(in.width) +
                   static_cast<size_t>(sx)) *
                  3],
          3,
          &out.rgb[(static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) *
                   3]);
    }
  return out;
}

}  // namespace

Rgb8 resizeLikePillow(const Rgb8& image, int width, int height, Resample filter) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3)
    throw std::invalid_argument("resizeLikePillow: not an RGB image");
  if (width <= 0 || height <= 0) throw std::invalid_argument("resizeLikePillow: empty size");
  if (width == image.width && height == image.height) return image;
  if (filter == Resample::Nearest) return resizeNearest(image, width, height);
  const Filter f = filterOf(filter);
  // Horizontal pass first, through an 8-bit image, then vertical, each only when the size changes.
  Rgb8 out = width != image.width ? resamplePass(image, width, f, true) : image;
  if (height != image.height) out = resamplePass(out, height, f, false);
  return out;
}

ImageProcessorConfig imageProcessorConfigFromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot be read");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
  }
  auto bad = [&](const std::string& field, const std::string& why) {
    return std::runtime_error(path + ": field '" + field + "' " + why);
  };
  const std::string type = j.value("image_processor_type", std::string("SiglipImageProcessor"));
  if (type != "SiglipImageProcessor" && type != "SiglipImageProcessorFast")
    throw bad("image_processor_type",
              "is \"" + type + "\"; supported: SiglipImageProcessor (resize, rescale, normalise)");
  if (j.value("do_center_crop", false))
    throw bad("do_center_crop", "is true; crops are not supported");
  ImageProcessorConfig c;
  std::string reading;  // the field being read, for a value of the wrong type
  try {
    reading = "do_resize";
    c.doResize = j.value("do_resize", true);
    reading = "size";
    if (j.contains("size")) {
      const auto& size = j["size"];
      if (size.contains("height") && size.contains("width")) {
        c.height = size["height"].get<int>();
        c.width = size["width"].get<int>();
      } else if (size.contains("shortest_edge")) {
        throw bad("size", "gives shortest_edge; SigLIP resizes to height x width");
      }
    }
    reading = "resample";
    const int resample = j.value("resample", 3);
    if (resample < 0 || resample > 5) throw bad("resample", "must be a Pillow filter 0..5");
    c.resample = static_cast<Resample>(resample);
    reading = "do_rescale";
    c.doRescale = j.value("do_rescale", true);
    reading = "rescale_factor";
    c.rescaleFactor = j.value("rescale_factor", 1.0 / 255.0);
    reading = "do_normalize";
    c.doNormalize = j.value("do_normalize", true);
    for (const char* key : {"image_mean", "image_std"}) {
      reading = key;
      if (!j.contains(key)) continue;
      auto& target = std::string(key) == "image_mean" ? c.mean : c.std;
      const auto& v = j[key];
      if (v.is_number())
        target.fill(v.get<double>());
      else if (v.is_array() && v.size() == 3)
        for (size_t k = 0; k < 3; ++k) target[k] = v[k].get<double>();
      else
        throw bad(key, "must be a number or three numbers");
    }
  } catch (const nlohmann::json::exception& e) {
    throw bad(reading, std::string("has the wrong type (") + e.what() + ")");
  }
  if (c.width <= 0 || c.height <= 0) throw bad("size", "must be positive");
  for (double s : c.std)
    if (s == 0.0) throw bad("image_std", "must not be 0");
  return c;
}

std::vector<float> pixelValues(const Rgb8& image, const ImageProcessorConfig& config) {
  const Rgb8 sized = config.doResize
                         ? resizeLikePillow(image, config.width, config.height, config.resample)
                         : image;
  const size_t plane = static_cast<size_t>(sized.width) * static_cast<size_t>(sized.height);
  std::vector<float> out(plane * 3);
  for (size_t p = 0; p < plane; ++p)
    for (size_t ch = 0; ch < 3; ++ch) {
      double v = sized.rgb[p * 3 + ch];
      if (config.doRescale) v *= config.rescaleFactor;
      if (config.doNormalize) v = (v - config.mean[ch]) / config.std[ch];
      out[ch * plane + p] = static_cast<float>(v);
    }
  return out;
}

}  // namespace pivot
