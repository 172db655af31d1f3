// deepcut-ctl: sends one command to a running edge's control endpoint and
// prints the answer, e.g. `deepcut-ctl --control tcp://127.0.0.1:5601 budget 20k`.
#include <CLI/CLI.hpp>
#include <iostream>
#include <zmq.hpp>

#include "cli/cli.h"

namespace {

using deepcut::cli::kExitBadOption;
using deepcut::cli::kExitRefused;  // the edge answered "error: ..."
// No answer in time: the edge is absent or stuck, a failed run for a script.
constexpr int kExitNoAnswer = deepcut::cli::kExitFailed;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"DeepCut control: change a running edge's bandwidth knob or ask its status"};
  std::string endpoint;
  std::vector<std::string> words;
  int timeout_ms = 3000;
  app.add_option("--control", endpoint, "the edge's --control endpoint")->required();
  app.add_option("--timeout-ms", timeout_ms, "give up waiting for the answer after this long")
      ->capture_default_str()
      ->check(deepcut::cli::Between(1, 3'600'000));
  app.add_option("command", words,
                 "budget RATE (e.g. budget 20k; 0: unlimited) | harvest RATE (e.g. harvest 30/h) | "
                 "status")
      ->required();
  app.footer("Exit codes: 0 ok, 1 the edge refused the command, 2 bad option, 5 no answer.");
  if (int code = deepcut::cli::Parse(app, argc, argv); code >= 0) return code;
  std::string line;
  for (const auto& w : words) line += (line.empty() ? "" : " ") + w;
  try {
    zmq::context_t context;
    zmq::socket_t socket(context, zmq::socket_type::req);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::rcvtimeo, timeout_ms);
    socket.set(zmq::sockopt::sndtimeo, timeout_ms);
    socket.connect(endpoint);
    if (!socket.send(zmq::buffer(line), zmq::send_flags::none)) {
      std::cerr << "deepcut-ctl: cannot send to " << endpoint << "\n";
      return kExitNoAnswer;
    }
    zmq::message_t reply;
    if (!socket.recv(reply, zmq::recv_flags::none)) {
      std::cerr << "deepcut-ctl: no answer from " << endpoint << " within " << timeout_ms
                << " ms\n";
      return kExitNoAnswer;
    }
    const std::string text(reply.data<char>(), reply.size());
    std::cout << text << "\n";
    return text.rfind("ok", 0) == 0 ? 0 : kExitRefused;
  } catch (const zmq::error_t& e) {
    std::cerr << "deepcut-ctl: --control '" << endpoint << "': " << e.what() << "\n";
    return kExitBadOption;
  }
}
