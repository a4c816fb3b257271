#include "visualization/image_pdf.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pivot {

void writeImagePdf(const std::string& path, int width, int height,
                   const std::vector<uint8_t>& rgb) {
  if (rgb.size() != static_cast<size_t>(width) * height * 3)
    throw std::invalid_argument(path + ": image size mismatch");
  std::ostringstream pdf;
  std::vector<long> offsets;
  auto object = [&](const std::string& body) {
    offsets.push_back(static_cast<long>(pdf.tellp()));
    pdf << offsets.size() << " 0 obj\n" << body << "\nendobj\n";
  };
  pdf << "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
  object("<< /Type /Catalog /Pages 2 0 R >>");
  object("<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
  object("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 " + std::to_string(width) + " " +
         std::to_string(height) +
         "] /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>");
  offsets.push_back(static_cast<long>(pdf.tellp()));
  pdf << "4 0 obj\n<< /Type /XObject /Subtype /Image /Width " << width << " /Height " << height
      << " /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length " << rgb.size() << " >>\nstream\n";
  pdf.write(reinterpret_cast<const char*>(rgb.data()), static_cast<std::streamsize>(rgb.size()));
  pdf << "\nendstream\nendobj\n";
  const std::string draw =
      "q " + std::to_string(width) + " 0 0 " + std::to_string(height) + " 0 0 cm /Im0 Do Q";
  object("<< /Length " + std::to_string(draw.size()) + " >>\nstream\n" + draw + "\nendstream");
  const long xref = static_cast<long>(pdf.tellp());
  pdf << "xref\n0 " << offsets.size() + 1 << "\n0000000000 65535 f \n";
  for (long o : offsets) {
    char line[21];
    std::snprintf(line, sizeof line, "%010ld 00000 n \n", o);
    pdf << line;
  }
  pdf << "trailer\n<< /Size " << offsets.size() + 1 << " /Root 1 0 R >>\nstartxref\n"
      << xref << "\n%%EOF\n";
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(path + ": cannot write");
  const std::string bytes = pdf.str();
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error(path + ": write failed");
}

}  // namespace pivot
