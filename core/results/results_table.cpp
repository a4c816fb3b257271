#include "results/results_table.h"

#include "results/encoder_style.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace pivot {

const char* const kResultsHeader = "base,sweep,seed,encoder,probe,metric,value";
const char* const kResultsHeaderWithoutBase = "sweep,seed,encoder,probe,metric,value";

namespace {

// Fields never hold commas except the sweep ("key=v"), which is quoted when it does.
std::string quoted(const std::string& field) {
  if (field.find_first_of(",\"") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::vector<std::string> splitCsvLine(const std::string& line) {
  std::vector<std::string> fields(1);
  bool inQuotes = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (inQuotes) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"')
        fields.back() += '"', ++i;
      else if (c == '"')
        inQuotes = false;
      else
        fields.back() += c;
    } else if (c == '"') {
      inQuotes = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  return fields;
}

template <typename T>
void addDistinct(std::vector<T>& out, const T& v) {
  if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
}

}  // namespace

void writeResultsCsv(const std::string& path, const std::vector<ResultRow>& rows) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << kResultsHeader << "\n" << std::setprecision(17);
  for (const auto& r : rows)
    out << r.base << ',' << quoted(r.sweep) << ',' << r.seed << ',' << quoted(r.encoder) << ','
        << quoted(r.probe) << ',' << quoted(r.metric) << ',' << r.value << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<ResultRow> readResultsCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::string line;
  if (!std::getline(in, line) ||
      (line.rfind(kResultsHeader, 0) != 0 && line.rfind(kResultsHeaderWithoutBase, 0) != 0))
    throw std::runtime_error(path + ":1: expected the header '" + std::string(kResultsHeader) +
                             "'");
  const bool withBase = line.rfind(kResultsHeader, 0) == 0;
  const size_t fields = withBase ? 7 : 6;
  std::vector<ResultRow> rows;
  for (int number = 2; std::getline(in, line); ++number) {
    if (line.empty() || line == "\r") continue;
    auto f = splitCsvLine(line);
    const auto where = path + ":" + std::to_string(number) + ": ";
    if (f.size() != fields)
      throw std::runtime_error(where + "expected " + std::to_string(fields) + " fields, found " +
                               std::to_string(f.size()));
    ResultRow r;
    if (withBase) {
      try {
        size_t used = 0;
        r.base = std::stoi(f[0], &used);
        if (used != f[0].size() || r.base < 1) throw std::invalid_argument("base");
      } catch (const std::exception&) {
        throw std::runtime_error(where + "base '" + f[0] + "' is not a positive integer");
      }
      f.erase(f.begin());
    }
    r.sweep = f[0];
    r.encoder = f[2];
    r.probe = f[3];
    r.metric = f[4];
    try {
      size_t used = 0;
      r.seed = std::stoi(f[1], &used);
      if (used != f[1].size()) throw std::invalid_argument("seed");
    } catch (const std::exception&) {
      throw std::runtime_error(where + "seed '" + f[1] + "' is not an integer");
    }
    try {
      size_t used = 0;
      r.value = std::stod(f[5], &used);
      if (used != f[5].size()) throw std::invalid_argument("value");
    } catch (const std::exception&) {
      throw std::runtime_error(where + "value '" + f[5] + "' is not a number");
    }
    rows.push_back(r);
  }
  return rows;
}

std::vector<CellValue> cellValues(const std::vector<ResultRow>& rows, const std::string& sweep,
                                  const std::string& encoder, const std::string& probe,
                                  const std::string& metric) {
  std::vector<CellValue> out;
  for (const auto& r : rows)
    if (r.encoder == encoder && r.probe == probe && r.metric == metric &&
        (r.sweep == sweep || r.seed == 0))
      out.push_back({r.base, r.seed, r.value});
  std::sort(out.begin(), out.end(), [](const CellValue& x, const CellValue& y) {
    return std::make_pair(x.base, x.seed) < std::make_pair(y.base, y.seed);
  });
  return out;
}

int distinctBases(const std::vector<ResultRow>& rows) {
  std::set<int> bases;
  for (const auto& r : rows) bases.insert(r.base);
  return static_cast<int>(bases.size());
}

std::string probeFamily(const std::string& probe) {
  return probe.rfind("linear/", 0) == 0 ? "linear" : probe;
}

namespace {

std::string familyTitle(const std::string& family) {
  if (family == "vqa") return "VQA of the MLLM itself (held-out ShapesWorld questions)";
  if (family == "swap_vqa") return "Swap test: the encoder under the stage-1 projector and LM";
  if (family == "swap_localisation")
    return "Swap test: localisation under the stage-1 projector and LM";
  if (family == "transplant_vqa") return "PIVOT transplant: a fresh MLLM around the frozen encoder";
  if (family == "localisation")
    return "Localisation of gradient maps (SFT loss) on the asked-about object";
  if (family == "segmentation")
    return "Segmentation probe (2-layer MLP per patch; mean over probe seeds)";
  if (family == "linear") return "Linear probes (top-1 on test, C chosen on validation)";
  if (family == "displacement")
    return "Encoder displacement from stage 1 (weight change, patch-token CKA)";
  return family;
}

}  // namespace

std::vector<std::string> encodersOf(const std::vector<ResultRow>& rows, const std::string& family) {
  std::set<std::string> present;
  for (const auto& r : rows)
    if (probeFamily(r.probe) == family) present.insert(r.encoder);
  std::vector<std::string> out;
  for (const auto& e : encoderOrder())
    if (present.count(e)) out.push_back(e);
  for (const auto& e : present)
    if (std::find(encoderOrder().begin(), encoderOrder().end(), e) == encoderOrder().end())
      out.push_back(e);
  return out;
}

std::vector<std::string> SummaryTable::armsVsSft() const {
  std::vector<std::string> arms;
  for (const auto& e : encoders)
    if (e != "original" && e != "stage1" && e != "sft") arms.push_back(e);
  return arms;
}

const Difference* SummaryTable::Line::differenceFor(const std::string& arm) const {
  for (const auto& [name, d] : minusSft)
    if (name == arm) return &d;
  return nullptr;
}

std::vector<SummaryTable> summaryTables(const std::vector<ResultRow>& rows,
                                        const std::string& sweep) {
  std::vector<SummaryTable> tables;
  for (const auto& [probe, metric] : distinctProbeMetrics(rows)) {
    if (metric == "macro_recall_probe_std")
      continue;  // in results.csv; the table shows the seed spread
    const std::string family = probeFamily(probe);
    if (tables.empty() || tables.back().family != family) {
      SummaryTable t;
      t.family = family;
      t.title = familyTitle(family);
      t.encoders = encodersOf(rows, family);
      tables.push_back(t);
    }
    auto& t = tables.back();
    SummaryTable::Line line;
    line.probe = probe;
    line.metric = metric;
    for (const auto& e : t.encoders) {
      line.cells.push_back(cellSummary(rows, sweep, e, probe, metric));
      line.baseMeans.push_back(cellBaseMeans(rows, sweep, e, probe, metric));
    }
    // Each arm - SFT over the (base, seed) pairs both arms have, nested over bases; none for a
    // line that is the same everywhere (a baseline), whose difference is 0 by construction.
    bool constant = true;
    for (const auto& c : line.cells)
      if (c.n && (c.std != 0 || c.mean != line.cells.front().mean)) constant = false;
    const auto sft = cellValues(rows, sweep, "sft", probe, metric);
    for (const auto& arm : t.armsVsSft())
      line.minusSft.push_back(
          {arm, constant ? Difference{}
                         : nestedDifference(cellValues(rows, sweep, arm, probe, metric), sft)});
    line.primary = isPrimaryEndpoint(probe, metric);
    t.lines.push_back(line);
  }
  return tables;
}

const std::vector<std::pair<std::string, std::string>>& primaryEndpoints() {
  static const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"swap_localisation", "mass_inside"},
      {"segmentation", "macro_recall"},
      {"linear/shape", "test_accuracy"}};
  return endpoints;
}

bool isPrimaryEndpoint(const std::string& probe, const std::string& metric) {
  const auto& e = primaryEndpoints();
  return std::find(e.begin(), e.end(), std::make_pair(probe, metric)) != e.end();
}

std::vector<PrimaryTest> primaryTests(const std::vector<ResultRow>& rows) {
  std::vector<PrimaryTest> tests;
  for (const auto& sweep : distinctSweeps(rows))
    for (const auto& [probe, metric] : primaryEndpoints()) {
      const auto sft = cellValues(rows, sweep, "sft", probe, metric);
      // The swap test of the stage-1 encoder is stage 1 itself: its own localisation.
      const std::string stage1Probe = probe.rfind("swap_", 0) == 0 ? probe.substr(5) : probe;
      const auto stage1 = cellValues(rows, sweep, "stage1", stage1Probe, metric);
      if (sft.empty()) continue;
      for (const auto& arm : encodersOf(rows, probeFamily(probe))) {
        if (arm == "original" || arm == "stage1") continue;
        const auto values = cellValues(rows, sweep, arm, probe, metric);
        if (values.empty()) continue;
        PrimaryTest t{sweep, arm, probe, metric, {}, {}, 1};
        if (arm != "sft") t.vsSft = nestedDifference(values, sft);
        if (!stage1.empty()) t.vsStage1 = differenceFromBase(values, stage1);
        tests.push_back(t);
      }
    }
  // The family: every arm - SFT test that has a p-value.
  std::vector<double> p;
  std::vector<size_t> which;
  for (size_t i = 0; i < tests.size(); ++i)
    if (tests[i].vsSft.defined) {
      p.push_back(tests[i].vsSft.p);
      which.push_back(i);
    }
  const auto adjusted = holmAdjusted(p);
  for (size_t k = 0; k < which.size(); ++k) tests[which[k]].holmP = adjusted[k];
  return tests;
}

std::vector<ResultRow> pooledRows(const std::vector<std::vector<ResultRow>>& replicates) {
  std::vector<ResultRow> out;
  int offset = 0;
  for (const auto& rows : replicates) {
    int largest = 0;
    for (auto r : rows) {
      largest = std::max(largest, r.base);
      r.base += offset;
      out.push_back(r);
    }
    offset += largest;
  }
  return out;
}

std::vector<ReplicateCheck> replicateChecks(const std::vector<std::vector<ResultRow>>& replicates) {
  std::vector<ReplicateCheck> checks;
  for (const auto& test : primaryTests(pooledRows(replicates))) {
    if (test.arm == "sft") continue;
    ReplicateCheck c{test.sweep, test.arm, test.probe, test.metric, {}, {}};
    std::vector<std::vector<double>> groups;
    for (const auto& rows : replicates) {
      const auto d =
          nestedDifference(cellValues(rows, test.sweep, test.arm, test.probe, test.metric),
                           cellValues(rows, test.sweep, "sft", test.probe, test.metric));
      c.perReplicate.push_back(d);
      groups.push_back(d.overBases ? d.perBase : std::vector<double>{});
    }
    c.heterogeneity = oneWayAnova(groups);
    checks.push_back(c);
  }
  return checks;
}

std::vector<double> cellBaseMeans(const std::vector<ResultRow>& rows, const std::string& sweep,
                                  const std::string& encoder, const std::string& probe,
                                  const std::string& metric) {
  std::map<int, std::vector<double>> byBase;
  for (const auto& v : cellValues(rows, sweep, encoder, probe, metric))
    byBase[v.base].push_back(v.value);
  std::vector<double> means;
  for (const auto& [base, values] : byBase) means.push_back(summarise(values).mean);
  return means;
}

Summary cellSummary(const std::vector<ResultRow>& rows, const std::string& sweep,
                    const std::string& encoder, const std::string& probe,
                    const std::string& metric) {
  std::vector<double> values;
  for (const auto& v : cellValues(rows, sweep, encoder, probe, metric)) values.push_back(v.value);
  return summarise(values);
}

std::vector<std::string> distinctSweeps(const std::vector<ResultRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows)
    if (r.seed != 0) addDistinct(out, r.sweep);
  if (out.empty()) out.push_back("");
  return out;
}

std::vector<std::string> distinctEncoders(const std::vector<ResultRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) addDistinct(out, r.encoder);
  return out;
}

std::vector<std::pair<std::string, std::string>> distinctProbeMetrics(
    const std::vector<ResultRow>& rows) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : rows) addDistinct(out, std::make_pair(r.probe, r.metric));
  return out;
}

}  // namespace pivot
