// GRPO's verifiable rewards: functions of a completion's text (and the sample's reference answer)
// that a checker, not a model, computes. Plain C++: no torch, no Qt.
//
//   accuracy  ShapesWorld's checker: the answer (the text inside <answer>...</answer> when the
//             completion has that shape, else the whole completion) normalised (lower case,
//             surrounding spaces and end punctuation dropped) equals the reference; counts match
//             as words or digits ("two" = "2"); a multiple-choice reference (one letter A-Z)
//             matches the letter a completion commits to ("The answer is B", "(B)", "B.", "B").
//   format    the answer alone (at most maxWords words, no tags), or R1's
//             "<think>...</think><answer>...</answer>" shape.
//   length    DAPO's soft overlong punishment: 0 up to maxTokens - cacheTokens, then falling
//             linearly to -1 at maxTokens, -1 beyond.
#pragma once
#include <string>

#include "config/vocabulary.h"

namespace pivot {

std::string normaliseAnswer(const std::string& text);
// The text inside <answer>...</answer> when present, else the whole text (trimmed).
std::string extractAnswer(const std::string& completion);
// The option letter a completion commits to ("" when none), for multiple-choice references.
std::string extractChoiceLetter(const std::string& completion);

double accuracyReward(const std::string& completion, const std::string& reference);

enum class FormatRule { AnswerAlone, ThinkAnswer };
double formatReward(const std::string& completion, FormatRule rule, int maxWords = 3);

double lengthPenalty(int completionTokens, int maxTokens, int cacheTokens);

// One reward function of a config's reward_funcs on a completion of `completionTokens` tokens
// (its stop token included); `length` gives the last quarter of maxTokens as DAPO's soft cache.
double rewardOf(RewardFunction f, const std::string& completion, int completionTokens,
                const std::string& reference, int maxTokens);

}  // namespace pivot
