// A minimal PDF writer: one page holding one RGB image (uncompressed), so figures export to PDF
// without Qt or a PDF library.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pivot {
void writeImagePdf(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb);
}
