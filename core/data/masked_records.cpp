#include "data/masked_records.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace pivot {

std::optional<MaskedRecord> parseMaskedRecordLine(const std::string& line,
                                                  const std::string& where) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return std::nullopt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {  // parse errors, numbers too large
    throw std::runtime_error(where + ": not JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw std::runtime_error(where + ": a record is a JSON object");
  for (const char* field : {"image", "mask", "question", "answer"})
    if (!j.contains(field) || !j[field].is_string())
      throw std::runtime_error(where + ": missing text field '" + field + "'");
  for (const char* field : {"rejected", "category"})
    if (j.contains(field) && !j[field].is_string())
      throw std::runtime_error(where + ": '" + field + "' is not text");
  MaskedRecord r;
  r.image = j["image"].get<std::string>();
  r.mask = j["mask"].get<std::string>();
  r.question = j["question"].get<std::string>();
  r.answer = j["answer"].get<std::string>();
  if (j.contains("rejected")) r.rejected = j["rejected"].get<std::string>();
  if (j.contains("category")) r.category = j["category"].get<std::string>();
  if (r.image.empty() || r.mask.empty())
    throw std::runtime_error(where + ": empty image or mask path");
  return r;
}

}  // namespace pivot
