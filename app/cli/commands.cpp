// What every command shares: where the workspace is, and opening an existing one.
#include <cstdlib>
#include <filesystem>

#include "commands.h"
#include "store/workspace.h"

namespace fs = std::filesystem;

namespace pivot::cli {

// Opens an existing workspace's store; never creates one (errors write nothing). Reading commands
// open it read-only, so a read-only workspace can be listed.
std::unique_ptr<RunStore> openExisting(const std::string& workspace, RunStore::Access access) {
  const auto path = storePath(workspace);
  if (!fs::exists(path)) throw std::runtime_error("workspace " + workspace + " has no runs.sqlite");
  return std::make_unique<RunStore>(path, access);
}

void refuseDamagedStore(const std::string& workspace) {
  const auto path = storePath(workspace);
  if (!fs::exists(path)) return;
  const std::string damage = RunStore(path, RunStore::Access::ReadOnly).firstDamage();
  if (!damage.empty())
    throw std::runtime_error(path + " is damaged (" + damage +
                             "): nothing is written into it; `pivot doctor` lists the damage, "
                             "and a copy of the file restores it");
}

std::string defaultWorkspace() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "pivot-workbench").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".local/share/pivot-workbench").string();
  return "pivot-workspace";
}

}  // namespace pivot::cli
