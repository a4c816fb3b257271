#include "visualization/drawing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "visualization/overlay.h"
#ifdef PIVOT_HAVE_ZLIB
#include <zlib.h>
#endif

namespace pivot {
namespace {

// Helvetica's advance widths (1/1000 em) for codes 32..126 in WinAnsi encoding (39 is quotesingle,
// 96 grave), from Adobe's Helvetica AFM.
constexpr int kHelvetica[95] = {
    278,  278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,  // 32-47
    556,  556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,  // 48-63
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,  // 64-79
    667,  778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,  // 80-95
    333,  556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,  // 96-111
    556,  556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584};      // 112-126

// UTF-8 to WinAnsi bytes: ASCII and Latin-1 as they are, the few typographic marks the figures use
// at their WinAnsi codes, anything else '?'.
std::string winAnsi(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size();) {
    const auto b = static_cast<uint8_t>(utf8[i]);
    uint32_t cp = b;
    int len = 1;
    if (b >= 0xF0)
      cp = b & 0x07, len = 4;
    else if (b >= 0xE0)
      cp = b & 0x0F, len = 3;
    else if (b >= 0xC0)
      cp = b & 0x1F, len = 2;
    for (int k = 1; k < len && i + k < utf8.size(); ++k)
      cp = cp << 6 | (static_cast<uint8_t>(utf8[i + k]) & 0x3F);
    i += len;
    if (cp < 0x80 || (cp >= 0xA0 && cp <= 0xFF))
      out += static_cast<char>(cp);
    else if (cp == 0x2013)
      out += '\x96';
    else if (cp == 0x2014)
      out += '\x97';
    else if (cp == 0x2022)
      out += '\x95';
    else if (cp == 0x2026)
      out += '\x85';
    else if (cp == 0x2212)
      out += '-';
    else
      out += '?';
  }
  return out;
}

// Helvetica's widths of the codes above ASCII that winAnsi() writes; Latin-1 letters take 556.
int wideWidth(uint8_t code) {
  switch (code) {
    case 0x85:
      return 1000;  // ellipsis
    case 0x95:
      return 350;  // bullet
    case 0x96:
      return 556;  // en dash
    case 0x97:
      return 1000;  // em dash
    case 0xB7:
      return 278;  // middle dot
    default:
      return 556;
  }
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", std::fabs(v) < 5e-3 ? 0.0 : v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string rgb01(const Colour& c) {
  return number(c[0] / 255.0) + " " + number(c[1] / 255.0) + " " + number(c[2] / 255.0);
}

double alignedX(const DrawOp& op) {
  const double w = textWidth(op.text, op.size);
  return op.points[0].first - (op.align == Align::Centre  ? w / 2
                               : op.align == Align::Right ? w
                                                          : 0);
}

// A zlib stream of `bytes`: deflated where the build has zlib, else in stored (uncompressed)
// blocks, which every inflater reads.
std::string zlibStream(const std::string& bytes) {
#ifdef PIVOT_HAVE_ZLIB
  uLongf size = compressBound(static_cast<uLong>(bytes.size()));
  std::string deflated(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(deflated.data()), &size,
                reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uLong>(bytes.size()),
                6) == Z_OK) {
    deflated.resize(size);
    return deflated;
  }
#endif
  std::string out = "\x78\x01";
  for (size_t at = 0; at < bytes.size() || at == 0; at += 65535) {
    const size_t n = std::min<size_t>(65535, bytes.size() - at);
    out += static_cast<char>(at + n >= bytes.size() ? 1 : 0);
    out += static_cast<char>(n & 0xFF), out += static_cast<char>(n >> 8);
    out += static_cast<char>(~n & 0xFF), out += static_cast<char>((~n >> 8) & 0xFF);
    out += bytes.substr(at, n);
    if (bytes.empty()) break;
  }
  uint32_t a = 1, b = 0;  // Adler-32
  for (unsigned char c : bytes) a = (a + c) % 65521, b = (b + a) % 65521;
  for (int shift : {24, 16, 8, 0}) out += static_cast<char>(((b << 16 | a) >> shift) & 0xFF);
  return out;
}

std::string bigEndian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A PNG chunk: length, type, data, CRC.
std::string pngChunk(const std::string& type, const std::string& data) {
  return bigEndian(static_cast<uint32_t>(data.size())) + type + data +
         bigEndian(pngCrc32(type + data, 0, type.size() + data.size()));
}

// An image's rows with filter 0 each, deflated: what IDAT (and APNG's fdAT) carry.
std::string pngPixels(const RgbImage& im) {
  std::string raw;
  const size_t row = static_cast<size_t>(im.width) * 3;
  for (int y = 0; y < im.height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(im.rgb.data()) + y * row, row);
  }
  return zlibStream(raw);
}

std::string pngHeader(const RgbImage& im) {
  return std::string("\x89PNG\r\n\x1a\n", 8) +
         pngChunk("IHDR", bigEndian(static_cast<uint32_t>(im.width)) +
                              bigEndian(static_cast<uint32_t>(im.height)) + "\x08\x02" +
                              std::string(3, '\0'));  // 8-bit RGB, deflate, no filter or interlace
}

// An RGB image as PNG bytes, for SVG's data URIs.
std::string pngOf(const RgbImage& im) {
  return pngHeader(im) + pngChunk("IDAT", pngPixels(im)) + pngChunk("IEND", "");
}

std::string base64(const std::string& bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 2]);
    out += table[v >> 18 & 63];
    out += table[v >> 12 & 63];
    out += i + 1 < bytes.size() ? table[v >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? table[v & 63] : '=';
  }
  return out;
}

std::string xmlEscaped(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::string svgColour(const Colour& c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c[0], c[1], c[2]);
  return buf;
}

// A PDF content stream: the page's operations, y flipped (PDF's origin is bottom-left).
std::string pdfContent(const Drawing& d) {
  std::ostringstream s;
  const auto X = [](double x) { return number(x); };
  const auto Y = [&](double y) { return number(d.height() - y); };
  const auto stroke = [&](const DrawOp& op) {
    s << rgb01(op.colour) << " RG " << number(op.width) << " w "
      << (op.dashed ? "[6 6] 0 d " : "[] 0 d ");
  };
  for (const DrawOp& op : d.ops()) {
    const auto& p = op.points;
    switch (op.kind) {
      case DrawOp::Kind::Line:
      case DrawOp::Kind::Polyline:
        stroke(op);
        s << "1 J 1 j " << X(p[0].first) << " " << Y(p[0].second) << " m";
        for (size_t i = 1; i < p.size(); ++i)
          s << " " << X(p[i].first) << " " << Y(p[i].second) << " l";
        s << " S\n";
        break;
      case DrawOp::Kind::Rect:
        s << rgb01(op.colour) << " rg " << X(p[0].first) << " " << Y(p[0].second + p[1].second)
          << " " << number(p[1].first) << " " << number(p[1].second) << " re f\n";
        break;
      case DrawOp::Kind::Ring: {  // a circle as four Bezier quarters
        const double cx = p[0].first, cy = d.height() - p[0].second, r = op.size, k = 0.5523 * r;
        stroke(op);
        s << rgb01(op.fill) << " rg " << X(cx + r) << " " << number(cy) << " m ";
        s << X(cx + r) << " " << number(cy + k) << " " << X(cx + k) << " " << number(cy + r) << " "
          << X(cx) << " " << number(cy + r) << " c ";
        s << X(cx - k) << " " << number(cy + r) << " " << X(cx - r) << " " << number(cy + k) << " "
          << X(cx - r) << " " << number(cy) << " c ";
        s << X(cx - r) << " " << number(cy - k) << " " << X(cx - k) << " " << number(cy - r) << " "
          << X(cx) << " " << number(cy - r) << " c ";
        s << X(cx + k) << " " << number(cy - r) << " " << X(cx + r) << " " << number(cy - k) << " "
          << X(cx + r) << " " << number(cy) << " c B\n";
        break;
      }
      case DrawOp::Kind::Text: {
        std::string escaped;
        for (char c : winAnsi(op.text)) {
          if (c == '(' || c == ')' || c == '\\') escaped += '\\';
          escaped += c;
        }
        s << "BT " << rgb01(op.colour) << " rg /F1 " << number(op.size) << " Tf " << X(alignedX(op))
          << " " << Y(p[0].second) << " Td (" << escaped << ") Tj ET\n";
        break;
      }
      case DrawOp::Kind::Image:
        s << "q " << number(p[1].first) << " 0 0 " << number(p[1].second) << " " << X(p[0].first)
          << " " << Y(p[0].second + p[1].second) << " cm /Im" << op.image << " Do Q\n";
        break;
    }
  }
  return s.str();
}

}  // namespace

Drawing::Drawing(double width, double height) : m_width(width), m_height(height) {}

void Drawing::line(double x0, double y0, double x1, double y1, Colour c, double width,
                   bool dashed) {
  DrawOp op;
  op.kind = DrawOp::Kind::Line;
  op.points = {{x0, y0}, {x1, y1}};
  op.colour = c;
  op.width = width;
  op.dashed = dashed;
  m_ops.push_back(std::move(op));
}

void Drawing::polyline(std::vector<std::pair<double, double>> points, Colour c, double width) {
  if (points.size() < 2) return;
  DrawOp op;
  op.kind = DrawOp::Kind::Polyline;
  op.points = std::move(points);
  op.colour = c;
  op.width = width;
  m_ops.push_back(std::move(op));
}

void Drawing::fillRect(double x, double y, double w, double h, Colour c) {
  DrawOp op;
  op.kind = DrawOp::Kind::Rect;
  op.points = {{x, y}, {w, h}};
  op.colour = c;
  m_ops.push_back(std::move(op));
}

void Drawing::ring(double cx, double cy, double radius, Colour fill, Colour stroke, double width) {
  DrawOp op;
  op.kind = DrawOp::Kind::Ring;
  op.points = {{cx, cy}};
  op.fill = fill;
  op.colour = stroke;
  op.size = radius;
  op.width = width;
  m_ops.push_back(std::move(op));
}

void Drawing::text(const std::string& s, double x, double y, double size, Align align, Colour c) {
  if (s.empty()) return;
  DrawOp op;
  op.kind = DrawOp::Kind::Text;
  op.points = {{x, y}};
  op.text = s;
  op.size = size;
  op.align = align;
  op.colour = c;
  m_ops.push_back(std::move(op));
}

void Drawing::image(const RgbImage& im, double x, double y, double w, double h) {
  if (im.rgb.size() != static_cast<size_t>(im.width) * im.height * 3 || im.width <= 0)
    throw std::invalid_argument("Drawing::image: the image's pixels do not match its size");
  DrawOp op;
  op.kind = DrawOp::Kind::Image;
  op.points = {{x, y}, {w, h}};
  op.image = static_cast<int>(m_images.size());
  m_images.push_back(im);
  m_ops.push_back(std::move(op));
}

void Drawing::place(const Drawing& other, double dx, double dy) {
  const int firstImage = static_cast<int>(m_images.size());
  m_images.insert(m_images.end(), other.m_images.begin(), other.m_images.end());
  for (DrawOp op : other.m_ops) {
    // A rectangle's and an image's second point is a size, not a place.
    const size_t moved =
        op.kind == DrawOp::Kind::Rect || op.kind == DrawOp::Kind::Image ? 1 : op.points.size();
    for (size_t i = 0; i < moved; ++i) op.points[i].first += dx, op.points[i].second += dy;
    if (op.image >= 0) op.image += firstImage;
    m_ops.push_back(std::move(op));
  }
}

uint32_t pngCrc32(const std::string& bytes, size_t from, size_t count) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = from; i < from + count; ++i) {
    c ^= static_cast<uint8_t>(bytes[i]);
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

double textWidth(const std::string& s, double size) {
  double units = 0;
  for (char c : winAnsi(s)) {
    const auto code = static_cast<uint8_t>(c);
    units += code >= 32 && code <= 126 ? kHelvetica[code - 32] : wideWidth(code);
  }
  return units / 1000.0 * size;
}

std::string pdfOf(const Drawing& d) {
  std::ostringstream pdf;
  std::vector<long> offsets;
  const auto object = [&](const std::string& body) {
    offsets.push_back(static_cast<long>(pdf.tellp()));
    pdf << offsets.size() << " 0 obj\n" << body << "\nendobj\n";
  };
  const auto stream = [](const std::string& dict, const std::string& bytes) {
    return "<< " + dict + " /Length " + std::to_string(bytes.size()) + " >>\nstream\n" + bytes +
           "\nendstream";
  };
  // Objects: 1 catalog, 2 pages, 3 page, 4 font, 5 content, 6.. one per image.
  std::string xobjects;
  for (size_t i = 0; i < d.images().size(); ++i)
    xobjects += "/Im" + std::to_string(i) + " " + std::to_string(6 + i) + " 0 R ";
  pdf << "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
  object("<< /Type /Catalog /Pages 2 0 R >>");
  object("<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
  object("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 " + number(d.width()) + " " +
         number(d.height()) + "] /Resources << /Font << /F1 4 0 R >> /XObject << " + xobjects +
         ">> >> /Contents 5 0 R >>");
  object("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  object(stream("", pdfContent(d)));  // plain text: a reader (or grep) finds the figure's words
  for (const RgbImage& im : d.images()) {
    const std::string pixels(im.rgb.begin(), im.rgb.end());
    object(stream("/Type /XObject /Subtype /Image /Width " + std::to_string(im.width) +
                      " /Height " + std::to_string(im.height) +
                      " /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode",
                  zlibStream(pixels)));
  }
  const long xref = static_cast<long>(pdf.tellp());
  pdf << "xref\n0 " << offsets.size() + 1 << "\n0000000000 65535 f \n";
  for (long o : offsets) {
    char line[21];
    std::snprintf(line, sizeof line, "%010ld 00000 n \n", o);
    pdf << line;
  }
  pdf << "trailer\n<< /Size " << offsets.size() + 1 << " /Root 1 0 R >>\nstartxref\n"
      << xref << "\n%%EOF\n";
  return pdf.str();
}

std::string svgOf(const Drawing& d) {
  std::ostringstream s;
  s << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" "
    << "width=\"" << number(d.width()) << "\" height=\"" << number(d.height())
    << "\" viewBox=\"0 0 " << number(d.width()) << " " << number(d.height()) << "\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  for (const DrawOp& op : d.ops()) {
    const auto& p = op.points;
    const std::string stroke = " stroke=\"" + svgColour(op.colour) + "\" stroke-width=\"" +
                               number(op.width) + "\"" +
                               (op.dashed ? " stroke-dasharray=\"6 6\"" : "");
    switch (op.kind) {
      case DrawOp::Kind::Line:
      case DrawOp::Kind::Polyline:
        s << "<polyline fill=\"none\" stroke-linecap=\"round\" stroke-linejoin=\"round\"" << stroke
          << " points=\"";
        for (const auto& [x, y] : p) s << number(x) << "," << number(y) << " ";
        s << "\"/>\n";
        break;
      case DrawOp::Kind::Rect:
        s << "<rect x=\"" << number(p[0].first) << "\" y=\"" << number(p[0].second) << "\" width=\""
          << number(p[1].first) << "\" height=\"" << number(p[1].second) << "\" fill=\""
          << svgColour(op.colour) << "\"/>\n";
        break;
      case DrawOp::Kind::Ring:
        s << "<circle cx=\"" << number(p[0].first) << "\" cy=\"" << number(p[0].second) << "\" r=\""
          << number(op.size) << "\" fill=\"" << svgColour(op.fill) << "\"" << stroke << "/>\n";
        break;
      case DrawOp::Kind::Text:
        s << "<text x=\"" << number(alignedX(op)) << "\" y=\"" << number(p[0].second)
          << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"" << number(op.size)
          << "\" fill=\"" << svgColour(op.colour) << "\">" << xmlEscaped(op.text) << "</text>\n";
        break;
      case DrawOp::Kind::Image: {
        const std::string uri =
            "data:image/png;base64," + base64(pngOf(d.images()[static_cast<size_t>(op.image)]));
        s << "<image x=\"" << number(p[0].first) << "\" y=\"" << number(p[0].second)
          << "\" width=\"" << number(p[1].first) << "\" height=\"" << number(p[1].second)
          << "\" preserveAspectRatio=\"none\" xlink:href=\"" << uri << "\"/>\n";
        break;
      }
    }
  }
  s << "</svg>\n";
  return s.str();
}

std::string apngOf(const std::vector<RgbImage>& frames, int delayMs) {
  if (frames.empty()) throw std::invalid_argument("an animation needs at least one frame");
  for (const auto& f : frames)
    if (f.width != frames.front().width || f.height != frames.front().height)
      throw std::invalid_argument("the animation's frames differ in size");
  const auto u16 = [](int v) {
    return std::string{static_cast<char>((v >> 8) & 0xFF), static_cast<char>(v & 0xFF)};
  };
  const auto count = static_cast<uint32_t>(frames.size());
  std::string out = pngHeader(frames.front()) +
                    pngChunk("acTL", bigEndian(count) + bigEndian(0));  // frames, loop forever
  uint32_t sequence = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    const auto& f = frames[i];
    out += pngChunk("fcTL", bigEndian(sequence++) + bigEndian(static_cast<uint32_t>(f.width)) +
                                bigEndian(static_cast<uint32_t>(f.height)) + bigEndian(0) +
                                bigEndian(0) + u16(std::clamp(delayMs, 1, 65535)) + u16(1000) +
                                std::string(2, '\0'));  // no disposal, source blend
    if (i == 0)
      out += pngChunk("IDAT", pngPixels(f));  // the first frame is also the still image
    else
      out += pngChunk("fdAT", bigEndian(sequence++) + pngPixels(f));
  }
  return out + pngChunk("IEND", "");
}

bool isVectorPath(const std::string& path) {
  const auto dot = path.rfind('.');
  if (dot == std::string::npos) return false;
  const std::string ext = path.substr(dot);
  return ext == ".pdf" || ext == ".svg";
}

void saveDrawing(const Drawing& d, const std::string& path) {
  if (!isVectorPath(path)) return saveImage(rasterize(d), path);
  const bool pdf = path.substr(path.rfind('.')) == ".pdf";
  const std::string bytes = pdf ? pdfOf(d) : svgOf(d);
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(path + ": cannot write");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error(path + ": write failed");
}

}  // namespace pivot
