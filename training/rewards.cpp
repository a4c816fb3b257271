#include "training/rewards.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>
#include <vector>

namespace pivot {
namespace {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// Counts as digits: "two" -> "2" (ShapesWorld writes words, a model may answer either).
std::string canonicalNumber(const std::string& word) {
  static const char* words[] = {"zero", "one",   "two",   "three", "four", "five",
                                "six",  "seven", "eight", "nine",  "ten"};
  for (int i = 0; i <= 10; ++i)
    if (word == words[i]) return std::to_string(i);
  return word;
}

}  // namespace

std::string normaliseAnswer(const std::string& text) {
  std::string out;
  for (unsigned char c : trim(text)) out += static_cast<char>(std::tolower(c));
  while (!out.empty() && std::string(" .!?,;:").find(out.back()) != std::string::npos)
    out.pop_back();  // "Red." and "red" are the same answer
  return canonicalNumber(trim(out));
}

std::string extractAnswer(const std::string& completion) {
  static const std::regex tagged("<answer>([\\s\\S]*?)</answer>");
  std::smatch m;
  if (std::regex_search(completion, m, tagged)) return trim(m[1].str());
  return trim(completion);
}

std::string extractChoiceLetter(const std::string& completion) {
  const std::string text = extractAnswer(completion);
  static const std::regex patterns[] = {
      std::regex("answer is:?\\s*\\(?([A-Za-z])\\b\\)?", std::regex::icase),  // "The answer is B"
      std::regex("^\\(?([A-Z])\\)?[.:]?$"),                                   // "B", "(B)", "B."
      std::regex("^\\(?([A-Z])[.):]\\s"),                                     // "B. a red circle"
      std::regex("\\(([A-Z])\\)"),                                            // "... (B) ..."
  };
  std::smatch m;
  for (const auto& p : patterns)
    if (std::regex_search(text, m, p)) {
      std::string letter = m[1].str();
      letter[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(letter[0])));
      return letter;
    }
  return "";
}

double accuracyReward(const std::string& completion, const std::string& reference) {
  const std::string ref = trim(reference);
  if (ref.size() == 1 && std::isalpha(static_cast<unsigned char>(ref[0])))  // multiple choice
    return extractChoiceLetter(completion) ==
                   std::string(1,
                               static_cast<char>(std::toupper(static_cast<unsigned char>(ref[0]))))
               ? 1.0
               : 0.0;
  return normaliseAnswer(extractAnswer(completion)) == normaliseAnswer(ref) ? 1.0 : 0.0;
}

double formatReward(const std::string& completion, FormatRule rule, int maxWords) {
  const std::string text = trim(completion);
  if (rule == FormatRule::ThinkAnswer) {
    static const std::regex shape("^<think>[\\s\\S]*?</think>\\s*<answer>[\\s\\S]*?</answer>$");
    return std::regex_match(text, shape) ? 1.0 : 0.0;
  }
  if (text.empty() || text.find('<') != std::string::npos) return 0.0;
  std::istringstream words(text);
  int n = 0;
  for (std::string w; words >> w;) ++n;
  return n <= maxWords ? 1.0 : 0.0;
}

double lengthPenalty(int tokens, int maxTokens, int cacheTokens) {
  const int free = maxTokens - cacheTokens;
  if (tokens <= free) return 0.0;
  if (tokens > maxTokens || cacheTokens <= 0) return -1.0;
  return static_cast<double>(free - tokens) / cacheTokens;
}

double rewardOf(RewardFunction f, const std::string& completion, int completionTokens,
                const std::string& reference, int maxTokens) {
  switch (f) {
    case RewardFunction::Accuracy:
      return accuracyReward(completion, reference);
    case RewardFunction::Format:
      return formatReward(completion, FormatRule::AnswerAlone);
    case RewardFunction::FormatThink:
      return formatReward(completion, FormatRule::ThinkAnswer);
    case RewardFunction::Length:
      return lengthPenalty(completionTokens, maxTokens, std::max(1, maxTokens / 4));
  }
  return 0.0;
}

}  // namespace pivot
