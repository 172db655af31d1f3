// deepcut-link: sits between deepcut-edge and deepcut-cloud and delivers the
// bytes with the timing of a recorded uplink (mahimahi trace) or a fixed rate,
// in real time, outages included.
// (netem/link_app.h does the work; this file declares its flags.)
#include <CLI/CLI.hpp>

#include "cli/cli.h"
#include "netem/link_app.h"

int main(int argc, char** argv) {
  using namespace deepcut;
  CLI::App app{
      "DeepCut link emulator: forwards edge <-> cloud messages with the timing of a network "
      "trace (1500-byte delivery opportunities, looped; drop-tail FIFO; one-way delay)"};
  netem::LinkAppOptions o;
  netem::LinkEmulatorOptions& options = o.emulator;
  std::string log_level = "info";
  app.add_option("--listen", options.listen, "endpoint the edges connect to")
      ->capture_default_str();
  app.add_option("--connect", options.connect, "the cloud's endpoint")->capture_default_str();
  app.add_option("--uplink", o.uplink,
                 "edge -> cloud capacity: a mahimahi trace file or a rate like 2M")
      ->required();
  app.add_option("--downlink", o.downlink, "cloud -> edge capacity: trace file or rate")
      ->capture_default_str();
  app.add_option("--delay-ms", options.uplink.delay_ms, "one-way delay, each direction")
      ->capture_default_str()
      ->check(cli::Between(0.0, 600'000.0));
  app.add_option("--queue-bytes", options.uplink.queue_bytes,
                 "drop-tail queue limit, each direction")
      ->capture_default_str()
      ->check(cli::Between(std::int64_t{1500}, std::int64_t{1} << 40));
  app.add_option("--max-edges", options.max_edges, "distinct edges served")
      ->capture_default_str()
      ->check(cli::Between(1, 65536));
  app.add_option("--idle-close-s", options.idle_close_s,
                 "close the cloud connection of an edge quiet for this long")
      ->capture_default_str()
      ->check(cli::Positive());
  std::string start = "first-message";
  app.add_option("--trace-start", start,
                 "when the trace's time zero is: the first message from an edge, or launch")
      ->capture_default_str()
      ->check(CLI::IsMember({"first-message", "launch"}));
  app.add_option("--stats-interval-s", options.stats_interval_s, "period of the stats log line")
      ->capture_default_str()
      ->check(cli::NonNegative());
  app.add_option("--ready-file", o.ready_file,
                 "write the bound endpoint here once listening (for scripts)")
      ->check(cli::OutputFile());
  cli::AddLogLevel(app, log_level);
  app.footer(cli::ExitCodesFooter({cli::kExitBadOption, cli::kExitBadInput, cli::kExitFailed}));
  if (int code = cli::Parse(app, argc, argv); code >= 0) return code;
  options.start_at_first_message = start == "first-message";
  options.downlink.delay_ms = options.uplink.delay_ms;
  options.downlink.queue_bytes = options.uplink.queue_bytes;
  cli::SetUpLogging("link", log_level);
  return cli::Finish(netem::RunLinkApp(std::move(o), cli::StopOnSignals()));
}
