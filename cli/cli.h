// The command-line conventions every DeepCut tool shares, so that an option, an
// exit code or an error reads the same in each: one exit code per kind of
// failure, option checks with messages a user can read, output paths checked
// before any work starts, and the spdlog set-up.
//
//   CLI::App app{"..."};
//   std::string log_level = "info", summary;
//   cli::AddLogLevel(app, log_level);
//   app.add_option("--summary", summary)->check(cli::OutputFile());
//   app.add_option("--deadline-ms", ms)->check(cli::Positive());
//   if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
//   cli::SetUpLogging("edge", log_level);
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <initializer_list>
#include <optional>
#include <string>

#include "core/status.h"

namespace deepcut::cli {

// Exit codes, the same in every tool (the README's table is this one).
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;    // the peer answered, and said no (deepcut-ctl)
inline constexpr int kExitBadOption = 2;  // an option, or a file an option names, is wrong
inline constexpr int kExitBadModel = 3;   // the model package is missing or malformed
inline constexpr int kExitBadInput = 4;   // a source, trace or dataset is unreadable or malformed
inline constexpr int kExitFailed = 5;     // the run itself failed (I/O, an unreachable peer)
inline constexpr int kExitInterrupted = 130;

// "Exit codes: 0 ok, 2 bad option, ...": the footer of a tool's --help, for
// the codes it can return, worded from the one table.
std::string ExitCodesFooter(std::initializer_list<int> codes);

// Why a tool's run failed: its exit code and the error. A tool's library entry
// point returns one of these (or nothing: it went well), its main.cpp hands it
// to Finish.
struct Failure {
  int exit_code = kExitFailed;
  Status status;
};
using Outcome = std::optional<Failure>;
inline Failure Fail(int exit_code, Status status) { return {exit_code, std::move(status)}; }
// Logs the failure (with `what` before it, e.g. "--source") and returns its code, or 0.
int Finish(const Outcome& outcome);

// SIGINT and SIGTERM set the flag returned (and do nothing else).
const std::atomic<bool>& StopOnSignals();

// Numeric checks; the message says what is allowed and what was given.
CLI::Validator Positive();     // > 0
CLI::Validator NonNegative();  // >= 0
CLI::Validator AtLeast(double lo);
CLI::Validator Between(double lo, double hi);
// A file the tool will write: its directory exists and is writable, checked
// before the run (core/files.h).
CLI::Validator OutputFile();

// The spdlog level names; anything else is refused.
void AddLogLevel(CLI::App& app, std::string& level);
// Logs to stderr (stdout is for results), at `level`, tagged with the tool.
void SetUpLogging(const std::string& tool, const std::string& level);

// Parses; returns -1 to go on, else the code to exit with (0 after --help).
int Parse(CLI::App& app, int argc, char** argv);

}  // namespace deepcut::cli
