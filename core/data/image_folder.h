// A labelled image dataset in torchvision's ImageFolder layout, for probing real encoders:
//
//   DIR/<class>/<image>                      one folder: split by a hash of each file's path
//   DIR/train|val|test/<class>/<image>       three folders: the splits as given
//
// Classes are the sub-folders in sorted order (label k = the k-th name, as torchvision numbers
// them); images are the files with torchvision's image extensions, in sorted order. In the
// one-folder layout a file goes to train, val or test by the FNV-1a hash of its path relative to
// DIR (3 : 1 : 1), so the split never depends on the order of listing and adding images leaves
// every other image where it was. Torch- and Qt-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pivot {

struct ImageFolderSplit {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  size_t size() const { return paths.size(); }
};

struct ImageFolder {
  std::string root;
  std::vector<std::string> classes;
  ImageFolderSplit train, val, test;
};

// Throws naming the folder: missing, no class folder, a split folder whose classes differ from
// train's, a class without images, or a split left empty.
ImageFolder openImageFolder(const std::string& dir);

// The first `count` images of a split, taken round-robin over the classes (so a cap keeps the
// classes balanced), in a fixed order.
ImageFolderSplit firstImages(const ImageFolderSplit& split, size_t count);

}  // namespace pivot
