// deepcut-link's run: the network traces opened, the emulator bound, its
// endpoint written to the ready file, then forwarding until `stop`. Its
// main.cpp only declares the flags that fill LinkAppOptions.
//
// Failures come back with their exit code: a bad option (2), a network trace
// that cannot be read (4), a ready file that cannot be written (5).
#pragma once

#include <atomic>
#include <string>

#include "cli/cli.h"
#include "netem/link_emulator.h"

namespace deepcut::netem {

struct LinkAppOptions {
  LinkEmulatorOptions emulator;
  std::string uplink = "";  // a mahimahi trace file or a rate like 2M
  std::string downlink = "12M";
  std::string ready_file;  // the bound endpoint; empty: none
};

cli::Outcome RunLinkApp(LinkAppOptions options, const std::atomic<bool>& stop);

}  // namespace deepcut::netem
