// pivot: the headless command line of PIVOT Workbench.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "commands.h"

int main(int argc, char** argv) {
  // glibc otherwise returns freed memory to the kernel after every training step; the page faults
  // made the C++ loop 1.3-1.5x slower than Python (DESIGN.md, performance habits).
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);

  CLI::App app{"pivot: train, inspect and export PIVOT Workbench runs (SFT vs DPO on a multimodal LLM)"};
  app.require_subcommand(1);
  std::string workspace = pivot::cli::defaultWorkspace();
  app.add_option("--workspace", workspace, "folder holding runs.sqlite and checkpoints/")->capture_default_str();

  pivot::cli::TrainArgs t;
  auto* train = app.add_subcommand("train", "train one stage (align, instruct, sft, dpo) as a new run");
  train->add_option("--preset", t.preset, "tiny, mini, or a preset .json file")->capture_default_str();
  train->add_option("--stage", t.stage, "align | instruct | sft | dpo")->capture_default_str();
  train->add_option("--from", t.from, "parent run (id or name) to start from; without it earlier stages run first");
  train->add_option("--resume", t.resume, "continue a stopped or crashed run from its last checkpoint");
  train->add_option("--name", t.name, "run name");
  train->add_option("--set", t.sets, "override a config value, key=value (repeatable)");
  train->add_flag("--quiet", t.quiet, "no progress line");

  app.add_subcommand("runs", "list the runs of the workspace");

  std::string run, key, out;
  bool csv = false;
  auto* metrics = app.add_subcommand("metrics", "print a run's metrics");
  metrics->add_option("RUN", run, "run id or name")->required();
  metrics->add_flag("--csv", csv, "all steps as CSV (step, one column per key)");
  metrics->add_option("--key", key, "only this metric");

  auto* exportCmd = app.add_subcommand("export", "export a run's checkpoint, vision encoder and metrics");
  exportCmd->add_option("RUN", run, "run id or name")->required();
  exportCmd->add_option("--out", out, "output folder")->required();

  std::string preset = "tiny";
  std::vector<std::string> sets;
  auto* demo = app.add_subcommand("demo", "the miniature study: align, instruct, then SFT and DPO from the same model");
  demo->add_option("--preset", preset, "tiny or mini")->capture_default_str();
  demo->add_option("--set", sets, "override a config value in every stage, key=value");

  int benchSteps = 10;
  std::string python = "/usr/bin/python3";
  std::string benchPreset = "mini";
  auto* bench = app.add_subcommand("bench", "time SFT and DPO steps in C++ and in Python (same model, same run)");
  bench->add_option("--preset", benchPreset, "tiny or mini")->capture_default_str();
  bench->add_option("--steps", benchSteps, "timed steps per measurement")->capture_default_str();
  bench->add_option("--python", python, "python with torch for the reference")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    if (*train) return pivot::cli::cmdTrain(workspace, t);
    if (app.got_subcommand("runs")) return pivot::cli::cmdRuns(workspace);
    if (*metrics) return pivot::cli::cmdMetrics(workspace, run, csv, key);
    if (*exportCmd) return pivot::cli::cmdExport(workspace, run, out);
    if (*demo) return pivot::cli::cmdDemo(workspace, preset, sets);
    if (*bench) return pivot::cli::cmdBench(benchPreset, benchSteps, python);
  } catch (const std::exception& e) {
    std::cerr << "pivot: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
