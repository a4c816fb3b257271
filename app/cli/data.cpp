// `pivot data check`: is this dataset what the user thinks it is? And `pivot bench data`: how fast
// a large LLaVA file is indexed, with what peak memory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "data/datasets.h"
#include "peak_memory.h"
#include "text/chat_template.h"
#include "text/hf_tokenizer.h"
#include "visualization/overlay.h"

namespace pivot::cli {
namespace {

namespace fs = std::filesystem;

// A histogram of token lengths in 8 equal bins, with a bar each.
void printLengths(std::vector<int> lengths, int maxLength) {
  if (lengths.empty()) return;
  std::sort(lengths.begin(), lengths.end());
  auto at = [&](double q) { return lengths[static_cast<size_t>(q * (lengths.size() - 1))]; };
  std::printf(
      "token lengths (prompt + chosen): min %d, median %d, p95 %d, max %d (max_length %d)\n",
      lengths.front(), at(0.5), at(0.95), lengths.back(), maxLength);
  const int bins = 8, low = lengths.front(), span = lengths.back() - low + 1;
  const int width = std::max(1, (span + bins - 1) / bins);
  std::vector<size_t> counts(bins, 0);
  for (int l : lengths) ++counts[static_cast<size_t>(std::min(bins - 1, (l - low) / width))];
  const size_t most = *std::max_element(counts.begin(), counts.end());
  for (int b = 0; b < bins; ++b) {
    const size_t bar = most ? counts[static_cast<size_t>(b)] * 40 / most : 0;
    std::printf("  %6d-%-6d %s %zu\n", low + b * width, low + (b + 1) * width - 1,
                std::string(bar, '#').c_str(), counts[static_cast<size_t>(b)]);
  }
}

// The rendering with the trained text between ⟦ and ⟧.
std::string marked(const ChatRendering& r) {
  std::string out;
  size_t last = 0;
  for (const auto& [b, e] : r.trained) {
    out += r.text.substr(last, b - last) + "\u27e6" + r.text.substr(b, e - b) + "\u27e7";
    last = e;
  }
  return out + r.text.substr(last);
}

}  // namespace

int cmdDataCheck(const DataCheckArgs& args) {
  // Training refuses these (config/train_config.cpp); so does its check, before reading anything.
  if (args.maxLength <= 0)
    throw std::runtime_error("--max-length must be positive, got " +
                             std::to_string(args.maxLength));
  if (args.maxImages < 0)
    throw std::runtime_error("--max-images must be 0 (any) or positive, got " +
                             std::to_string(args.maxImages));
  DatasetOptions options;
  if (!args.format.empty()) options.format = datasetFormatFromName(args.format);
  options.imageRoot = args.imageRoot;
  options.checkImages = !args.noImageCheck;
  const auto data = ConversationDataset::open(args.file, options);
  std::printf("data: %s (%s, %zu records; index %s)\n", args.file.c_str(), name(data.format()),
              data.size(), data.indexFromCache() ? "read from cache" : "built");
  if (data.size() == 0) throw std::runtime_error(args.file + ": holds no records");

  std::optional<HfTokenizer> tokenizer;
  ChatFormat chatFormat = ChatFormat::ChatMl;
  if (!args.tokenizer.empty()) tokenizer = HfTokenizer::load(args.tokenizer);
  if (!args.chatFormat.empty())
    chatFormat = chatFormatFromName(args.chatFormat);
  else if (tokenizer)
    chatFormat = recogniseChatTemplate(tokenizer->chatTemplate());

  ScanOptions scan;
  scan.tokenizer = tokenizer ? &*tokenizer : nullptr;
  scan.chatFormat = chatFormat;
  scan.maxLength = args.maxLength;
  scan.maxImages = args.maxImages;
  scan.skipBad = args.skipBad;
  if (options.checkImages)  // what a batch does with each image, so a bad one is found here
    scan.decodeImage = [](const std::string& path) { (void)readRgb8(path); };
  const ScanResult result = scanDataset(data, scan);
  size_t skipped = 0;
  std::string reasons;
  for (const auto& [why, n] : result.skipped) {
    skipped += n;
    reasons += (reasons.empty() ? ": " : ", ") + std::to_string(n) + " " + why;
  }
  std::printf("loaded %zu, skipped %zu%s\n", result.kept.size(), skipped, reasons.c_str());
  if (!result.firstBad.empty()) std::printf("first bad record: %s\n", result.firstBad.c_str());
  if (!tokenizer)
    std::printf("(no --tokenizer: token lengths and the max_length filter skipped)\n");
  printLengths(result.lengths, args.maxLength);
  if (result.kept.empty())
    throw std::runtime_error(args.file + ": no usable record (training would refuse it)");

  const DatasetRecord first = data.record(result.kept[0]);
  const ChatRendering rendering = renderChat(chatFormat, recordConversation(first, chatFormat));
  std::printf("\nfirst example, %s, as %s; trained text between \u27e6 \u27e7:\n",
              first.where.c_str(), name(chatFormat));
  for (const auto& image : first.images) std::printf("image: %s\n", image.c_str());
  std::cout << marked(rendering);
  if (first.isPreference()) {
    const ChatRendering rejected =
        renderChat(chatFormat, recordConversation(first, chatFormat, /*rejected=*/true));
    const auto& [b, e] = rejected.trained.front();
    std::cout << "rejected answer: \u27e6" << rejected.text.substr(b, e - b) << "\u27e7\n";
  }
  if (tokenizer) {
    const TokenizedChat tokens = tokenizeChat(*tokenizer, rendering);
    std::printf("%zu tokens, %ld trained\n", tokens.ids.size(),
                static_cast<long>(std::count(tokens.trained.begin(), tokens.trained.end(), 1)));
  }
  return 0;
}

int cmdBenchData(const DataBenchArgs& args) {
  using Clock = std::chrono::steady_clock;
  const fs::path folder = args.folder.empty() ? fs::temp_directory_path() : fs::path(args.folder);
  const fs::path file = folder / "pivot-bench-llava.json";
  // A LLaVA-665k-like file: records with one or more turns, long answers, escapes.
  {
    std::ofstream out(file, std::ios::binary);
    out << "[\n";
    const std::string answer =
        "The image shows a kitchen counter with a red cup, a \\\"silver\\\" spoon and a plate of "
        "fruit [apples, pears]. The light comes from a window on the left; nothing else is on "
        "the counter.";
    size_t bytes = 2, records = 0;
    const size_t target = static_cast<size_t>(args.megabytes * 1e6);
    while (bytes < target) {
      std::string r = "{\"id\": \"" + std::to_string(records) + "\", \"image\": \"coco/train2017/" +
                      std::to_string(100000 + records) +
                      ".jpg\", \"conversations\": [{\"from\": \"human\", \"value\": "
                      "\"<image>\\nWhat is on the counter?\"}";
      for (size_t turn = 0; turn < 1 + records % 4; ++turn)
        r += ", {\"from\": \"gpt\", \"value\": \"" + answer +
             "\"}, {\"from\": \"human\", "
             "\"value\": \"And then?\"}";
      r += ", {\"from\": \"gpt\", \"value\": \"" + answer + "\"}]}";
      r += ",\n";
      bytes += r.size();
      out << r;
      ++records;
    }
    out << "{\"id\": \"last\", \"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}]}\n]\n";
  }
  const double mb = static_cast<double>(fs::file_size(file)) / 1e6;
  fs::remove(RecordIndex::cachePath(file.string()));
  resetPeakRss();
  const double rssBefore = peakRssMb();
  auto t0 = Clock::now();
  const RecordIndex index = RecordIndex::open(file.string());
  const double build = std::chrono::duration<double>(Clock::now() - t0).count();
  const double rssPeak = peakRssMb();
  t0 = Clock::now();
  const RecordIndex cached = RecordIndex::open(file.string());
  const double reopen = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("data bench: %.0f MB LLaVA-style JSON array, %zu records\n", mb, index.size());
  std::printf("  index pass    %.2f s  %.0f records/s  %.0f MB/s\n", build,
              static_cast<double>(index.size()) / build, mb / build);
  std::printf(
      "  peak RSS      %.1f MB during the pass (%.1f MB before; the index itself %.1f MB)\n",
      rssPeak, rssBefore, static_cast<double>(index.size() * sizeof(RecordIndex::Entry)) / 1e6);
  std::printf("  second open   %.3f s (index %s)\n", reopen,
              cached.fromCache() ? "read from the cache" : "rebuilt: the cache was not written");
  // One record in the middle, to show random access works on the big file.
  const auto middle = nlohmann::json::parse(index.read(index.size() / 2));
  std::printf("  record %zu: id %s\n", index.size() / 2, middle["id"].dump().c_str());
  if (!args.keep) {
    fs::remove(file);
    fs::remove(RecordIndex::cachePath(file.string()));
  }
  return 0;
}

}  // namespace pivot::cli
