#include "io/export_folder.h"

#include <unistd.h>

#include <stdexcept>
#include <system_error>

namespace fs = std::filesystem;

namespace pivot {
namespace {

// Absolute, `..` and symbolic links resolved as far as the path exists, no trailing separator.
fs::path resolved(const fs::path& p) {
  std::error_code ec;
  fs::path out = fs::weakly_canonical(fs::absolute(p, ec), ec);
  if (ec) out = fs::absolute(p, ec).lexically_normal();
  if (!out.has_filename() && out.has_parent_path() && out != out.root_path())
    out = out.parent_path();
  return out;
}

// `inner` is `outer` or lies inside it (both resolved).
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator's empty element
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

fs::path besideTarget(const fs::path& target, const std::string& role) {
  return target.parent_path() /
         ("." + target.filename().string() + ".pivot-" + role + "-" + std::to_string(::getpid()));
}

}  // namespace

void checkExportTarget(const fs::path& target, const std::vector<ProtectedPath>& protectedPaths,
                       bool overwrite) {
  if (target.empty()) throw std::runtime_error("export: --out is empty");
  const fs::path out = resolved(target);
  const std::string named = "export target " + target.string();
  if (out == out.root_path()) throw std::runtime_error(named + " is the file system's root");
  for (const auto& p : protectedPaths) {
    if (p.path.empty()) continue;
    const fs::path source = resolved(p.path);
    if (within(out, source))
      throw std::runtime_error(named + " is " + (out == source ? "" : "inside ") + p.what + " (" +
                               p.path.string() + "); the run reads from there, choose another " +
                               "folder");
    if (within(source, out))
      throw std::runtime_error(named + " holds " + p.what + " (" + p.path.string() +
                               "); replacing it would delete that, choose another folder");
  }
  std::error_code ec;
  const auto status = fs::status(out, ec);
  if (ec || !fs::exists(status)) return;  // a new folder
  if (!fs::is_directory(status)) throw std::runtime_error(named + " exists and is not a folder");
  if (fs::directory_iterator(out, ec) == fs::directory_iterator()) return;  // empty
  if (!overwrite)
    throw std::runtime_error(named +
                             " already holds files; pass --overwrite to replace that folder whole "
                             "(an export never mixes its files with another's)");
  if (!fs::exists(out / "config.json"))
    throw std::runtime_error(named +
                             " holds files but no config.json, so it is not an earlier export; "
                             "--overwrite replaces only an export folder, choose another folder");
}

StagedFolder::StagedFolder(fs::path target) : m_target(resolved(target)) {
  m_staging = besideTarget(m_target, "export");
  fs::create_directories(m_target.parent_path());
  fs::remove_all(m_staging);  // a leftover of this pid's earlier attempt
  fs::create_directory(m_staging);
}

StagedFolder::~StagedFolder() {
  if (m_committed) return;
  std::error_code ec;
  fs::remove_all(m_staging, ec);  // nothing half-written survives a failed export
}

void StagedFolder::commit() {
  std::error_code ec;
  if (!fs::exists(m_target, ec)) {
    fs::rename(m_staging, m_target);
    m_committed = true;
    return;
  }
  // Two renames: the old folder aside, the new one in. Should the second fail, the first is undone.
  const fs::path old = besideTarget(m_target, "replaced");
  fs::remove_all(old, ec);
  fs::rename(m_target, old);
  try {
    fs::rename(m_staging, m_target);
  } catch (...) {
    fs::rename(old, m_target, ec);
    throw;
  }
  m_committed = true;
  fs::remove_all(old, ec);
}

}  // namespace pivot
