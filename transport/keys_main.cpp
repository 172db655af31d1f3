// deepcut-keys: makes a CURVE key pair for deepcut-cloud or deepcut-edge.
//
//   deepcut-keys --out-dir keys --name cloud   # keys/cloud.key (secret), keys/cloud.pub
//
// The .key file stays with its owner (--curve-key); the .pub file goes to the
// peers (the cloud's to every edge as --cloud-key, an edge's to the cloud's
// --accept-keys). Format: transport/curve_keys.h, docs/protocol.md.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/cli.h"
#include "transport/curve_keys.h"

namespace {

using deepcut::cli::kExitBadOption;
// Replacing a key by accident is the user's mistake: an option (--force) is missing.
constexpr int kExitExists = deepcut::cli::kExitBadOption;
constexpr int kExitWriteFailed = deepcut::cli::kExitFailed;
constexpr int kExitNoCurve = deepcut::cli::kExitFailed;

}  // namespace

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{"DeepCut keys: writes a CURVE key pair NAME.key (secret, mode 0600) and NAME.pub"};
  std::string out_dir = ".", name;
  bool force = false;
  app.add_option("--out-dir", out_dir, "directory to write to (created if missing)")
      ->capture_default_str();
  app.add_option("--name", name, "file name stem, e.g. cloud or edge-17")
      ->required()
      ->check([](const std::string& n) -> std::string {
        if (n.empty() || n == "." || n == ".." ||
            n.find_first_not_of(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                std::string::npos)
          return "a name is letters, digits, '.', '_' and '-'";
        return {};
      });
  app.add_flag("--force", force, "replace existing NAME.key / NAME.pub");
  app.footer(
      "Exit codes: 0 ok, 2 bad option (a key file exists and no --force), 5 writing failed or "
      "libzmq has no CURVE.");
  if (int code = deepcut::cli::Parse(app, argc, argv); code >= 0) return code;

  auto pair = transport::GenerateCurveKeyPair();
  if (!pair.ok()) {
    std::cerr << "deepcut-keys: " << pair.status().message() << "\n";
    return pair.status().code() == StatusCode::kUnavailable ? kExitNoCurve : kExitWriteFailed;
  }
  if (Status written = transport::WriteKeyFiles(out_dir, name, *pair, force); !written.ok()) {
    std::cerr << "deepcut-keys: " << written.message() << "\n";
    return written.code() == StatusCode::kInvalidArgument ? kExitExists : kExitWriteFailed;
  }
  std::cout << "wrote " << out_dir << "/" << name << ".key (secret) and " << out_dir << "/" << name
            << ".pub\npublic-key = " << pair->public_key << "\n";
  return 0;
}
