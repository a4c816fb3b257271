// Where an export may go, and how it gets there without mixing or destroying weights.
//
// An export is never written into its target folder file by file: a folder that already held an
// export would keep the other layout's files (a sharded index beside a single model.safetensors,
// which pivot and transformers then read differently), and a failure half-way would leave something
// that looks like a model. Instead the export is written into a staging folder beside the target
// and swapped into place whole once every file is written; a failed export leaves the target as it
// was. A target that is, or lies inside or around, a folder the run reads from (its base model, its
// encoder's source, its data, its checkpoints) is refused before anything is written.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace pivot {

// A folder (or file) an export must leave alone, and what it is to the run, for the error message.
struct ProtectedPath {
  std::string what;  // e.g. "the run's base model folder"
  std::filesystem::path path;
};

// Throws, naming the target, when `target` is somewhere an export must not write: one of
// `protectedPaths`, inside one, or holding one (replacing the target would delete it); an existing
// file; a non-empty folder while `overwrite` is false; with `overwrite`, a non-empty folder that
// does not look like an earlier export (no config.json), so --overwrite never empties a folder of
// other things. Paths are compared after resolving symbolic links and `..`; empty protected paths
// are ignored.
void checkExportTarget(const std::filesystem::path& target,
                       const std::vector<ProtectedPath>& protectedPaths, bool overwrite);

// A staging folder beside `target` (same file system, so the swap is a rename). Write the export
// into path(); commit() moves it into place, replacing whatever folder was there; destroying an
// uncommitted StagedFolder removes what was staged and leaves the target untouched.
class StagedFolder {
 public:
  explicit StagedFolder(std::filesystem::path target);
  ~StagedFolder();
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;

  const std::filesystem::path& path() const { return m_staging; }
  void commit();

 private:
  std::filesystem::path m_target, m_staging;
  bool m_committed = false;
};

}  // namespace pivot
