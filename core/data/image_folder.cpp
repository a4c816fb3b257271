#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <stdexcept>

namespace pivot {
namespace {

namespace fs = std::filesystem;

bool isImageFile(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* known :
       {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
    if (ext == known) return true;
  return false;
}

std::vector<std::string> sortedSubfolders(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory() && entry.path().filename().string().rfind('.', 0) != 0)
      names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<fs::path> sortedImages(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && isImageFile(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

// One ImageFolder (class folders) as lists per class.
std::vector<std::vector<fs::path>> readClasses(const fs::path& dir,
                                               const std::vector<std::string>& classes) {
  std::vector<std::vector<fs::path>> out;
  for (const auto& name : classes) {
    out.push_back(sortedImages(dir / name));
    if (out.back().empty())
      throw std::runtime_error((dir / name).string() + ": class folder without images");
  }
  return out;
}

void append(ImageFolderSplit& split, const fs::path& path, int64_t label) {
  split.paths.push_back(path.string());
  split.labels.push_back(label);
}

}  // namespace

ImageFolder openImageFolder(const std::string& dirText) {
  const fs::path dir(dirText);
  if (!fs::is_directory(dir)) throw std::runtime_error(dirText + ": no such folder");
  ImageFolder out;
  out.root = dirText;
  const bool presplit = fs::is_directory(dir / "train");
  if (presplit) {
    out.classes = sortedSubfolders(dir / "train");
    for (const char* name : {"val", "test"})
      if (!fs::is_directory(dir / name))
        throw std::runtime_error(dirText + ": has train/ but no " + name +
                                 "/ (give all three splits, or one folder of classes)");
    ImageFolderSplit* splits[] = {&out.train, &out.val, &out.test};
    const char* names[] = {"train", "val", "test"};
    for (int s = 0; s < 3; ++s) {
      if (sortedSubfolders(dir / names[s]) != out.classes)
        throw std::runtime_error((dir / names[s]).string() +
                                 ": its class folders differ from train/'s");
      const auto perClass = readClasses(dir / names[s], out.classes);
      for (size_t k = 0; k < perClass.size(); ++k)
        for (const auto& path : perClass[k]) append(*splits[s], path, static_cast<int64_t>(k));
    }
  } else {
    out.classes = sortedSubfolders(dir);
    const auto perClass = readClasses(dir, out.classes);
    for (size_t k = 0; k < perClass.size(); ++k)
      for (const auto& path : perClass[k]) {
        const uint64_t bucket = fnv1a(fs::relative(path, dir).generic_string()) % 5;
        append(bucket < 3    ? out.train
               : bucket == 3 ? out.val
                             : out.test,
               path, static_cast<int64_t>(k));
      }
  }
  if (out.classes.size() < 2)
    throw std::runtime_error(dirText + ": a probe needs at least two class folders, found " +
                             std::to_string(out.classes.size()));
  for (const auto* split : {&out.train, &out.val, &out.test})
    if (split->size() == 0)
      throw std::runtime_error(dirText + ": a split has no image (too few images to split 3:1:1)");
  return out;
}

ImageFolderSplit firstImages(const ImageFolderSplit& split, size_t count) {
  std::map<int64_t, std::vector<size_t>> byClass;
  for (size_t i = 0; i < split.size(); ++i) byClass[split.labels[i]].push_back(i);
  ImageFolderSplit out;
  for (size_t round = 0; out.size() < count; ++round) {
    bool any = false;
    for (const auto& [label, indices] : byClass) {
      if (round >= indices.size() || out.size() >= count) continue;
      any = true;
      append(out, split.paths[indices[round]], label);
    }
    if (!any) break;
  }
  return out;
}

}  // namespace pivot
