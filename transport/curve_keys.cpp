#include "transport/curve_keys.h"

#include "core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace deepcut::transport {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
constexpr std::string_view kPublicField = "public-key";
constexpr std::string_view kSecretField = "secret-key";

std::string_view Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

// The fields of a key file, checked line by line; absent fields are empty.
struct KeyFields {
  std::string public_key;
  std::string secret_key;
};

Result<KeyFields> ParseFields(std::string_view text, const std::string& source) {
  KeyFields fields;
  int line_number = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = Trim(text.substr(start, end - start));
    start = end + 1;
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    const std::string where = source + ":" + std::to_string(line_number) + ": ";
    // Split at the first '=': field names have none ('=' is a Z85 character).
    const auto eq = line.find('=');
    if (eq == std::string_view::npos)
      return InvalidArgument(where + "expected 'public-key = <z85>' or 'secret-key = <z85>'");
    const std::string_view name = Trim(line.substr(0, eq));
    const std::string_view value = Trim(line.substr(eq + 1));
    std::string* slot = name == kPublicField   ? &fields.public_key
                        : name == kSecretField ? &fields.secret_key
                                               : nullptr;
    if (!slot) return InvalidArgument(where + "unknown field '" + std::string(name) + "'");
    if (!slot->empty()) return InvalidArgument(where + std::string(name) + " given twice");
    if (Status valid = CheckZ85Key(value); !valid.ok())
      return InvalidArgument(where + std::string(name) + ": " + valid.message());
    *slot = std::string(value);
  }
  return fields;
}

Result<std::string> ReadText(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return InvalidArgument(path + " is a directory, not a key file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read key file " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  // A key file is a few lines; anything big is not one.
  if (text.str().size() > 64 * 1024) return InvalidArgument(path + " is too large for a key file");
  return text.str();
}

// A temporary file beside `final_path` holding `text`, with `mode`; its path.

}  // namespace

bool CurveAvailable() { return zmq_has("curve") != 0; }

Status RequireCurve() {
  if (CurveAvailable()) return Status::Ok();
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  return Unavailable("this libzmq (" + std::to_string(major) + "." + std::to_string(minor) + "." +
                     std::to_string(patch) +
                     ") was built without CURVE support (zmq_has(\"curve\") is false); "
                     "rebuild libzmq with libsodium or its built-in tweetnacl");
}

Result<CurveKeyPair> GenerateCurveKeyPair() {
  RETURN_IF_ERROR(RequireCurve());
  char public_key[kCurveKeyZ85Chars + 1] = {};
  char secret_key[kCurveKeyZ85Chars + 1] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0)
    return Internal(std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno()));
  return CurveKeyPair{public_key, secret_key};
}

Status CheckZ85Key(std::string_view key) {
  if (key.size() != kCurveKeyZ85Chars)
    return InvalidArgument("a key is " + std::to_string(kCurveKeyZ85Chars) +
                           " Z85 characters, this one has " + std::to_string(key.size()));
  for (std::size_t i = 0; i < key.size(); ++i)
    if (kZ85Alphabet.find(key[i]) == std::string_view::npos)
      return InvalidArgument("character " + std::to_string(i + 1) + " ('" + std::string(1, key[i]) +
                             "') is not a Z85 character");
  // Every 5 characters must encode a value below 2^32.
  const std::string text(key);
  std::uint8_t bytes[32];
  if (zmq_z85_decode(bytes, text.c_str()) == nullptr)
    return InvalidArgument("not valid Z85 (a 5-character group is out of range)");
  return Status::Ok();
}

std::string FormatSecretKeyFile(const CurveKeyPair& pair) {
  return "# DeepCut CURVE key pair (ZeroMQ CURVE, Z85). Keep this file secret.\n"
         "# Give the matching .pub file to the peers that must know this key.\n" +
         std::string(kPublicField) + " = " + pair.public_key + "\n" + std::string(kSecretField) +
         " = " + pair.secret_key + "\n";
}

std::string FormatPublicKeyFile(std::string_view public_key) {
  return "# DeepCut CURVE public key (ZeroMQ CURVE, Z85).\n" + std::string(kPublicField) + " = " +
         std::string(public_key) + "\n";
}

Result<CurveKeyPair> ParseSecretKeyFile(std::string_view text, const std::string& source) {
  ASSIGN_OR_RETURN(KeyFields fields, ParseFields(text, source));
  if (fields.secret_key.empty())
    return InvalidArgument(source +
                           ": no 'secret-key = <z85>' line (a .pub file is not a key pair)");
  if (fields.public_key.empty()) return InvalidArgument(source + ": no 'public-key = <z85>' line");
  if (CurveAvailable()) {
    char derived[kCurveKeyZ85Chars + 1] = {};
    if (zmq_curve_public(derived, fields.secret_key.c_str()) != 0)
      return InvalidArgument(source + ": cannot derive the public key from the secret key");
    if (fields.public_key != derived)
      return InvalidArgument(source + ": the public key does not belong to the secret key");
  }
  return CurveKeyPair{std::move(fields.public_key), std::move(fields.secret_key)};
}

Result<std::string> ParsePublicKeyFile(std::string_view text, const std::string& source) {
  ASSIGN_OR_RETURN(KeyFields fields, ParseFields(text, source));
  if (!fields.secret_key.empty())
    return InvalidArgument(source + ": holds a secret key; give the public .pub file instead");
  if (fields.public_key.empty()) return InvalidArgument(source + ": no 'public-key = <z85>' line");
  return std::move(fields.public_key);
}

Result<CurveKeyPair> ReadSecretKeyFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadText(path));
  return ParseSecretKeyFile(text, path);
}

Result<std::string> ReadPublicKeyFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadText(path));
  return ParsePublicKeyFile(text, path);
}

Result<std::vector<std::string>> ReadPublicKeys(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    ASSIGN_OR_RETURN(std::string key, ReadPublicKeyFile(path));
    return std::vector<std::string>{key};
  }
  std::vector<std::string> files;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".pub" && !it->is_directory(ec))
      files.push_back(it->path().string());
  if (ec) return NotFound("cannot list " + path + ": " + ec.message());
  if (files.empty()) return InvalidArgument(path + ": no .pub files in this directory");
  std::sort(files.begin(), files.end());
  std::vector<std::string> keys;
  for (const auto& file : files) {
    ASSIGN_OR_RETURN(std::string key, ReadPublicKeyFile(file));
    keys.push_back(std::move(key));
  }
  return keys;
}

Status WriteKeyFiles(const std::string& dir, const std::string& name, const CurveKeyPair& pair,
                     bool overwrite) {
  RETURN_IF_ERROR(CheckZ85Key(pair.public_key));
  RETURN_IF_ERROR(CheckZ85Key(pair.secret_key));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return NotFound("cannot create directory " + dir + ": " + ec.message());
  const std::string key_path = (fs::path(dir) / (name + ".key")).string();
  const std::string pub_path = (fs::path(dir) / (name + ".pub")).string();
  if (!overwrite)
    for (const auto& p : {key_path, pub_path})
      if (fs::exists(fs::symlink_status(p, ec)))
        return InvalidArgument(p + " exists; not overwriting it (use --force to replace it)");

  ASSIGN_OR_RETURN(std::string key_tmp,
                   WriteTemporaryFile(key_path, FormatSecretKeyFile(pair), 0600));
  auto pub_tmp = WriteTemporaryFile(pub_path, FormatPublicKeyFile(pair.public_key), 0644);
  if (!pub_tmp.ok()) {
    ::unlink(key_tmp.c_str());
    return pub_tmp.status();
  }
  // Without `overwrite`, a file that appeared meanwhile is not replaced.
  auto place = [&](const std::string& tmp, const std::string& path) -> Status {
    Status placed = PlaceFile(tmp, path, overwrite);
    if (placed.code() == StatusCode::kInvalidArgument)
      return InvalidArgument(path + " exists; not overwriting it (use --force to replace it)");
    return placed;
  };
  if (Status placed = place(key_tmp, key_path); !placed.ok()) {
    ::unlink(pub_tmp->c_str());
    return placed;
  }
  if (Status placed = place(*pub_tmp, pub_path); !placed.ok()) {
    // Not half a pair: the .key written above goes too (it is new unless overwriting).
    if (!overwrite) ::unlink(key_path.c_str());
    return placed;
  }
  return Status::Ok();
}

Result<ClientCurveKeys> LoadClientCurveKeys(const std::string& server_pub_file,
                                            const std::string& own_key_file) {
  ClientCurveKeys keys;
  ASSIGN_OR_RETURN(keys.server_public_key, ReadPublicKeyFile(server_pub_file));
  ASSIGN_OR_RETURN(keys.own, ReadSecretKeyFile(own_key_file));
  RETURN_IF_ERROR(RequireCurve());
  return keys;
}

Result<ServerCurveKeys> LoadServerCurveKeys(const std::string& own_key_file,
                                            const std::string& accept_path) {
  ServerCurveKeys keys;
  ASSIGN_OR_RETURN(keys.own, ReadSecretKeyFile(own_key_file));
  RETURN_IF_ERROR(RequireCurve());
  if (!accept_path.empty()) {
    ASSIGN_OR_RETURN(keys.accepted, ReadPublicKeys(accept_path));
  }
  return keys;
}

}  // namespace deepcut::transport
