// CURVE key pairs and the key files that hold them.
//
// The edge–cloud link can be encrypted and authenticated with ZeroMQ's CURVE
// mechanism (docs/protocol.md, "Encryption and authentication"). Keys are
// Z85 text, 40 characters for 32 bytes. Two file kinds, both plain text:
//
//   NAME.key  (secret, mode 0600)        NAME.pub  (public)
//     # comment lines are ignored          public-key = <z85>
//     public-key = <z85>
//     secret-key = <z85>
//
// One `field = value` per line; blank lines and lines starting with '#' are
// ignored; any other line, an unknown or repeated field, a key that is not
// 40 Z85 characters, or (in a .key) a public key that does not belong to the
// secret key is an error naming the file, the line and what is wrong.
//
// Free functions, no state: safe from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace deepcut::transport {

inline constexpr std::size_t kCurveKeyZ85Chars = 40;  // Z85 text of a 32-byte key

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// Whether the linked libzmq was built with CURVE (zmq_has("curve")).
bool CurveAvailable();
// An Unavailable status naming the missing CURVE support, or Ok.
Status RequireCurve();

// A fresh key pair (zmq_curve_keypair).
Result<CurveKeyPair> GenerateCurveKeyPair();

// Ok if `key` is 40 characters of the Z85 alphabet that decode to 32 bytes.
Status CheckZ85Key(std::string_view key);

// The text of a .key file (both keys) and of a .pub file (the public key only).
std::string FormatSecretKeyFile(const CurveKeyPair& pair);
std::string FormatPublicKeyFile(std::string_view public_key);

// Parse a file's text; `source` names it in error messages.
Result<CurveKeyPair> ParseSecretKeyFile(std::string_view text, const std::string& source);
// A .pub file; a file holding a secret key is refused (a .pub is meant to be shared).
Result<std::string> ParsePublicKeyFile(std::string_view text, const std::string& source);

// Read and parse a file (NotFound if it cannot be read).
Result<CurveKeyPair> ReadSecretKeyFile(const std::string& path);
Result<std::string> ReadPublicKeyFile(const std::string& path);
// The public keys in `path`: one .pub file, or every *.pub file of a directory
// (sorted by name; other files are ignored; a directory without any is an error).
Result<std::vector<std::string>> ReadPublicKeys(const std::string& path);

// What the tools' CURVE options name, read and checked once (libzmq's CURVE
// too): an edge's `--cloud-key SERVER.pub --curve-key OWN.key` ...
struct ClientCurveKeys {
  std::string server_public_key;
  CurveKeyPair own;
};
Result<ClientCurveKeys> LoadClientCurveKeys(const std::string& server_pub_file,
                                            const std::string& own_key_file);
// ... and a cloud's `--curve-key OWN.key [--accept-keys PATH]` (accepted empty:
// any edge that knows the server's key).
struct ServerCurveKeys {
  CurveKeyPair own;
  std::vector<std::string> accepted;
};
Result<ServerCurveKeys> LoadServerCurveKeys(const std::string& own_key_file,
                                            const std::string& accept_path);

// Writes DIR/NAME.key (mode 0600) and DIR/NAME.pub (mode 0644) atomically:
// each is written to a temporary file and then moved into place, so a failure
// leaves no partial file. Without `overwrite`, fails with kInvalidArgument
// (message "... exists ...") if either file already exists and writes neither.
// Creates DIR if missing.
Status WriteKeyFiles(const std::string& dir, const std::string& name, const CurveKeyPair& pair,
                     bool overwrite);

}  // namespace deepcut::transport
