#include "cli/cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <csignal>
#include <cstdio>

#include "core/files.h"

namespace deepcut::cli {
namespace {

std::string Number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.10g", v);
  return text;
}

// A check of the number the option holds; `rule` says what it must be.
CLI::Validator NumberCheck(std::string rule, std::function<bool(double)> ok) {
  return CLI::Validator(
      [rule, ok](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v))
          return "'" + text + "' is not a number";
        return ok(v) ? std::string() : "must be " + rule + " (got " + text + ")";
      },
      rule);
}

}  // namespace

CLI::Validator Positive() {
  return NumberCheck("> 0", [](double v) { return v > 0; });
}

CLI::Validator NonNegative() {
  return NumberCheck(">= 0", [](double v) { return v >= 0; });
}

CLI::Validator AtLeast(double lo) {
  return NumberCheck(">= " + Number(lo), [lo](double v) { return v >= lo; });
}

CLI::Validator Between(double lo, double hi) {
  return NumberCheck("between " + Number(lo) + " and " + Number(hi),
                     [lo, hi](double v) { return v >= lo && v <= hi; });
}

CLI::Validator OutputFile() {
  return CLI::Validator(
      [](std::string& path) -> std::string {
        if (path.empty()) return {};
        Status s = CheckWritableOutput(path);
        return s.ok() ? std::string() : s.message();
      },
      "FILE");
}

void AddLogLevel(CLI::App& app, std::string& level) {
  app.add_option("--log-level", level, "trace|debug|info|warn|error|critical|off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
}

void SetUpLogging(const std::string& tool, const std::string& level) {
  // Logs go to stderr; stdout is for results (summaries, tables, JSON).
  spdlog::set_default_logger(spdlog::stderr_color_mt(tool));
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("[%H:%M:%S.%e] [" + tool + "] [%l] %v");
}

std::string ExitCodesFooter(std::initializer_list<int> codes) {
  std::string text = "Exit codes: 0 ok";
  for (int code : codes) {
    text += ", " + std::to_string(code) + " ";
    switch (code) {
      case kExitRefused:
        text += "the peer refused the command";
        break;
      case kExitBadOption:
        text += "bad option";
        break;
      case kExitBadModel:
        text += "bad model package";
        break;
      case kExitBadInput:
        text += "bad source, trace or dataset";
        break;
      case kExitFailed:
        text += "the run failed";
        break;
      case kExitInterrupted:
        text += "interrupted";
        break;
      default:
        text += "?";
        break;
    }
  }
  return text + ".";
}

int Finish(const Outcome& outcome) {
  if (!outcome) return kExitOk;
  spdlog::error("{}", outcome->status.message());
  return outcome->exit_code;
}

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

const std::atomic<bool>& StopOnSignals() {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  return g_stop;
}

int Parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitBadOption;
  }
  return -1;
}

}  // namespace deepcut::cli
