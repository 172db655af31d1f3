#include "netem/link_app.h"

#include <spdlog/spdlog.h>

#include "core/files.h"

namespace deepcut::netem {
namespace {

Status Named(const std::string& what, const Status& s) {
  return Status(s.code(), what + ": " + s.message());
}

}  // namespace

cli::Outcome RunLinkApp(LinkAppOptions o, const std::atomic<bool>& stop) {
  auto uplink = network::OpenLink(o.uplink);
  if (!uplink.ok()) return cli::Fail(cli::kExitBadInput, Named("--uplink", uplink.status()));
  auto downlink = network::OpenLink(o.downlink);
  if (!downlink.ok()) return cli::Fail(cli::kExitBadInput, Named("--downlink", downlink.status()));
  RealClock clock;
  const std::string up_name = uplink->name, down_name = downlink->name;
  const double up_bps = uplink->MeanBps();
  auto link = LinkEmulator::Create(o.emulator, std::move(*uplink), std::move(*downlink), clock);
  if (!link.ok()) return cli::Fail(cli::kExitBadOption, link.status());
  spdlog::info("{} -> {}: uplink {} (mean {:.0f} bit/s), downlink {}, delay {} ms, queue {} B",
               (*link)->endpoint(), o.emulator.connect, up_name, up_bps, down_name,
               o.emulator.uplink.delay_ms, o.emulator.uplink.queue_bytes);
  if (!o.ready_file.empty())
    if (Status written = WriteFileAtomically(o.ready_file, (*link)->endpoint() + "\n");
        !written.ok())
      return cli::Fail(cli::kExitFailed, Named("--ready-file", written));
  (*link)->Run(stop);
  return std::nullopt;
}

}  // namespace deepcut::netem
