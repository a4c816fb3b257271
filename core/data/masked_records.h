// Image+mask records for localisation on any data (`pivot localize --data`): one JSON object a
// line,
//   {"image": "a.png", "mask": "a-mask.png", "question": "...", "answer": "...",
//    "rejected": "..." (optional), "category": "..." (optional)}
// with paths relative to the records file. Parsing is torch- and OpenCV-free (fuzzed alone);
// reading the images is the caller's.
#pragma once
#include <optional>
#include <string>

namespace pivot {

struct MaskedRecord {
  std::string image, mask;  // as written in the record
  std::string question, answer, rejected;
  std::string category = "all";
};

// One line of a records file: nullopt for a blank line; a bad record throws "<where>: why"
// (where = "file:line").
std::optional<MaskedRecord> parseMaskedRecordLine(const std::string& line,
                                                  const std::string& where);

}  // namespace pivot
