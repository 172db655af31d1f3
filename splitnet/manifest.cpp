#include "splitnet/manifest.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace deepcut::splitnet {
namespace {

using nlohmann::json;

// Each getter names the JSON path it read, so errors point at the field.
Result<const json*> Member(const json& obj, const std::string& path, const char* key) {
  if (!obj.is_object()) return InvalidArgument(path + " must be an object");
  auto it = obj.find(key);
  if (it == obj.end()) return InvalidArgument("missing field " + path + "." + key);
  return &*it;
}

Result<int> GetInt(const json& obj, const std::string& path, const char* key, int lo, int hi) {
  ASSIGN_OR_RETURN(const json* v, Member(obj, path, key));
  if (!v->is_number_integer())
    return InvalidArgument("field " + path + "." + key + " must be an integer");
  auto x = v->get<long long>();
  if (x < lo || x > hi)
    return InvalidArgument("field " + path + "." + key + " = " + std::to_string(x) +
                           " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                           "]");
  return static_cast<int>(x);
}

Result<float> GetFloat(const json& obj, const std::string& path, const char* key) {
  ASSIGN_OR_RETURN(const json* v, Member(obj, path, key));
  if (!v->is_number()) return InvalidArgument("field " + path + "." + key + " must be a number");
  double x = v->get<double>();
  if (!std::isfinite(x)) return InvalidArgument("field " + path + "." + key + " is not finite");
  // Beyond float's range the value would become an infinity.
  if (std::abs(x) > std::numeric_limits<float>::max())
    return InvalidArgument("field " + path + "." + key + " is out of float range");
  return static_cast<float>(x);
}

Result<std::string> GetString(const json& obj, const std::string& path, const char* key) {
  ASSIGN_OR_RETURN(const json* v, Member(obj, path, key));
  if (!v->is_string() || v->get<std::string>().empty())
    return InvalidArgument("field " + path + "." + key + " must be a non-empty string");
  return v->get<std::string>();
}

Result<std::vector<float>> GetFloats(const json& obj, const std::string& path, const char* key,
                                     size_t n) {
  ASSIGN_OR_RETURN(const json* v, Member(obj, path, key));
  if (!v->is_array() || v->size() != n)
    return InvalidArgument("field " + path + "." + key + " must be an array of " +
                           std::to_string(n) + " numbers");
  std::vector<float> out;
  for (const auto& x : *v) {
    if (!x.is_number()) return InvalidArgument("field " + path + "." + key + " holds a non-number");
    if (std::abs(x.get<double>()) > std::numeric_limits<float>::max())
      return InvalidArgument("field " + path + "." + key + " holds a number out of float range");
    out.push_back(x.get<float>());
  }
  return out;
}

Result<std::filesystem::path> GetFile(const json& files, const std::filesystem::path& dir,
                                      const char* key) {
  ASSIGN_OR_RETURN(std::string name, GetString(files, "files", key));
  if (name.find("..") != std::string::npos || name.front() == '/')
    return InvalidArgument("files." + std::string(key) +
                           " must be a plain file name inside the package");
  auto path = dir / name;
  // The error_code overload: a name the file system refuses (too long, say)
  // is a bad manifest, not an exception.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return NotFound("files." + std::string(key) + ": " + path.string() +
                    (ec ? " cannot be opened: " + ec.message() : " does not exist"));
  return path;
}

Status ParseCalibration(const json& root, Manifest& m) {
  ASSIGN_OR_RETURN(const json* cal, Member(root, "", "exit_calibration"));
  ASSIGN_OR_RETURN(const json* bins, Member(*cal, "exit_calibration", "bins"));
  if (!bins->is_array() || bins->empty())
    return InvalidArgument("exit_calibration.bins must be a non-empty array");
  for (size_t i = 0; i < bins->size(); ++i) {
    std::string path = "exit_calibration.bins[" + std::to_string(i) + "]";
    const json& b = (*bins)[i];
    CalibrationBin bin;
    ASSIGN_OR_RETURN(bin.confidence_min, GetFloat(b, path, "confidence_min"));
    ASSIGN_OR_RETURN(bin.confidence_max, GetFloat(b, path, "confidence_max"));
    ASSIGN_OR_RETURN(bin.error_rate, GetFloat(b, path, "error_rate"));
    ASSIGN_OR_RETURN(bin.count, GetInt(b, path, "count", 0, 1 << 30));
    if (bin.confidence_min > bin.confidence_max)
      return InvalidArgument(path + ": confidence_min > confidence_max");
    if (bin.error_rate < 0.0f || bin.error_rate > 1.0f)
      return InvalidArgument(path + ".error_rate must be in [0, 1]");
    if (b.contains("cloud_accuracy")) {
      const json& acc = b["cloud_accuracy"];
      if (!acc.is_object()) return InvalidArgument(path + ".cloud_accuracy must be an object");
      bin.cloud_accuracy.assign(m.rates.size(), -1.0f);
      for (const auto& [rate, value] : acc.items()) {
        const int r = m.RateIndex(rate);
        if (r < 0) continue;  // a rate the package dropped
        if (!value.is_number() || value.get<double>() < 0.0 || value.get<double>() > 1.0)
          return InvalidArgument(path + ".cloud_accuracy." + rate + " must be in [0, 1]");
        bin.cloud_accuracy[r] = value.get<float>();
      }
    }
    if (!m.calibration.empty() &&
        std::abs(m.calibration.back().confidence_max - bin.confidence_min) > 1e-6f)
      return InvalidArgument(path + " does not start where the previous bin ends");
    m.calibration.push_back(bin);
  }
  if (m.calibration.front().confidence_min > 1e-6f ||
      m.calibration.back().confidence_max < 1.0f - 1e-6f)
    return InvalidArgument("exit_calibration.bins must cover confidences [0, 1]");
  return Status::Ok();
}

// {"kind": "left-up-context/1", "total_bits": 12, "rates": {"2b": [[[f, ...] x contexts] x
// channels]}}
Status ParseEntropyModel(const json& e, Manifest& m) {
  ASSIGN_OR_RETURN(std::string kind, GetString(e, "entropy_model", "kind"));
  if (kind != "left-up-context/1")
    return InvalidArgument("entropy_model.kind '" + kind +
                           "' is unknown (this runtime reads left-up-context/1)");
  ASSIGN_OR_RETURN(int total_bits, GetInt(e, "entropy_model", "total_bits", 1, 16));
  if (total_bits != 12) return InvalidArgument("entropy_model.total_bits must be 12");
  ASSIGN_OR_RETURN(const json* rates, Member(e, "entropy_model", "rates"));
  if (!rates->is_object()) return InvalidArgument("entropy_model.rates must be an object");
  for (const auto& [name, tables] : rates->items()) {
    const std::string path = "entropy_model.rates." + name;
    const int index = m.RateIndex(name);
    if (index < 0) return InvalidArgument(path + ": no such rate");
    Rate& rate = m.rates[index];
    if (rate.bits > 4)
      return InvalidArgument(path + ": context models are for rates of at most 4 bits");
    if (!tables.is_array() || static_cast<int>(tables.size()) != rate.channels)
      return InvalidArgument(path + " must hold one table per channel sent (" +
                             std::to_string(rate.channels) + ")");
    for (const auto& channel : tables) {
      if (!channel.is_array() || static_cast<int>(channel.size()) != rate.Contexts())
        return InvalidArgument(path + ": each channel needs " + std::to_string(rate.Contexts()) +
                               " contexts");
      for (const auto& freqs : channel) {
        if (!freqs.is_array() || static_cast<int>(freqs.size()) != rate.Symbols())
          return InvalidArgument(path + ": each context needs " + std::to_string(rate.Symbols()) +
                                 " frequencies");
        int sum = 0;
        for (const auto& f : freqs) {
          // Read as 64 bits: as an int, 2^32 + 1 would pass for 1.
          if (!f.is_number_integer() || f.get<std::int64_t>() < 1 || f.get<std::int64_t>() > 4096)
            return InvalidArgument(path + ": frequencies must be integers in [1, 4096]");
          sum += f.get<int>();
          rate.context_frequencies.push_back(static_cast<std::uint16_t>(f.get<int>()));
        }
        if (sum != 4096)
          return InvalidArgument(path + ": a context's frequencies must sum to 4096");
      }
    }
  }
  return Status::Ok();
}

Status ParseRates(const json& root, Manifest& m) {
  ASSIGN_OR_RETURN(const json* rates, Member(root, "", "rates"));
  if (!rates->is_array() || rates->empty())
    return InvalidArgument("rates must be a non-empty array");
  std::set<std::string> names;
  for (size_t i = 0; i < rates->size(); ++i) {
    std::string path = "rates[" + std::to_string(i) + "]";
    Rate r;
    ASSIGN_OR_RETURN(r.name, GetString((*rates)[i], path, "name"));
    ASSIGN_OR_RETURN(r.bits, GetInt((*rates)[i], path, "bits", 1, 8));
    ASSIGN_OR_RETURN(r.channels, GetInt((*rates)[i], path, "channels", 1, m.bottleneck.channels));
    if (!names.insert(r.name).second)
      return InvalidArgument(path + ": duplicate rate name " + r.name);
    m.rates.push_back(r);
  }
  if (root.contains("entropy_model")) RETURN_IF_ERROR(ParseEntropyModel(root["entropy_model"], m));
  // Required: a package says which rate an edge uses unless told otherwise, so
  // that no run silently depends on the order of the rates.
  if (!root.contains("default_rate"))
    return InvalidArgument(
        "default_rate is missing (the name of the rate an edge uses by default)");
  ASSIGN_OR_RETURN(std::string name, GetString(root, "", "default_rate"));
  m.default_rate_index = m.RateIndex(name);
  if (m.default_rate_index < 0)
    return InvalidArgument("default_rate " + name + " is not one of the rates");
  return Status::Ok();
}

Status ParseFusion(const json& f, Manifest& m) {
  if (!f.is_object()) return InvalidArgument("fusion must be an object");
  auto number = [&](const char* key, double lo, double hi, double& out) -> Status {
    if (!f.contains(key)) return InvalidArgument(std::string("fusion.") + key + " is missing");
    if (!f[key].is_number() || !(f[key].get<double>() >= lo && f[key].get<double>() <= hi))
      return InvalidArgument(std::string("fusion.") + key + " must be a number in [" +
                             std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out = f[key].get<double>();
    return Status::Ok();
  };
  RETURN_IF_ERROR(number("change_distance", 0.0, 1e6, m.fusion.change_distance));
  RETURN_IF_ERROR(number("decay_scale", 0.0, 1e6, m.fusion.decay_scale));
  RETURN_IF_ERROR(number("exit_weight", 0.0, 1e3, m.fusion.exit_weight));
  RETURN_IF_ERROR(number("cloud_weight", 0.0, 1e3, m.fusion.cloud_weight));
  m.fusion.present = true;
  return Status::Ok();
}

Status ParseInput(const json& root, Manifest& m) {
  ASSIGN_OR_RETURN(const json* in, Member(root, "", "input"));
  InputSpec& s = m.input;
  ASSIGN_OR_RETURN(s.channels, GetInt(*in, "input", "channels", 1, 3));
  ASSIGN_OR_RETURN(s.height, GetInt(*in, "input", "height", 1, 4096));
  ASSIGN_OR_RETURN(s.width, GetInt(*in, "input", "width", 1, 4096));
  ASSIGN_OR_RETURN(s.scale, GetFloat(*in, "input", "scale"));
  ASSIGN_OR_RETURN(s.mean, GetFloats(*in, "input", "mean", s.channels));
  ASSIGN_OR_RETURN(s.std, GetFloats(*in, "input", "std", s.channels));
  for (float x : s.std)
    if (!(x > 0.0f)) return InvalidArgument("input.std values must be > 0");
  if (in->contains("layout")) {
    ASSIGN_OR_RETURN(std::string layout, GetString(*in, "input", "layout"));
    if (layout != "NCHW") return InvalidArgument("input.layout must be NCHW, got " + layout);
  }
  if (in->contains("interpolation")) {
    ASSIGN_OR_RETURN(s.interpolation, GetString(*in, "input", "interpolation"));
    if (s.interpolation != "area" && s.interpolation != "linear" && s.interpolation != "nearest" &&
        s.interpolation != "cubic" && s.interpolation != "lanczos")
      return InvalidArgument(
          "input.interpolation must be area, linear, nearest, cubic or "
          "lanczos, got " +
          s.interpolation);
  }
  if (in->contains("channel_order")) {
    ASSIGN_OR_RETURN(s.channel_order, GetString(*in, "input", "channel_order"));
    if (s.channel_order != "bgr" && s.channel_order != "rgb")
      return InvalidArgument("input.channel_order must be bgr or rgb, got " + s.channel_order);
  }
  return Status::Ok();
}

Status ParseBottleneck(const json& root, Manifest& m) {
  ASSIGN_OR_RETURN(const json* b, Member(root, "", "bottleneck"));
  BottleneckSpec& s = m.bottleneck;
  ASSIGN_OR_RETURN(s.channels, GetInt(*b, "bottleneck", "channels", 1, 4096));
  ASSIGN_OR_RETURN(s.height, GetInt(*b, "bottleneck", "height", 1, 1024));
  ASSIGN_OR_RETURN(s.width, GetInt(*b, "bottleneck", "width", 1, 1024));
  ASSIGN_OR_RETURN(s.min, GetFloat(*b, "bottleneck", "min"));
  ASSIGN_OR_RETURN(s.max, GetFloat(*b, "bottleneck", "max"));
  if (!(s.max > s.min))
    return InvalidArgument("bottleneck.max must be greater than bottleneck.min");
  // In 64 bits: channels * height * width can exceed an int.
  if (std::int64_t{s.channels} * s.height * s.width > (1 << 22))
    return InvalidArgument("bottleneck has too many elements");
  if (b->contains("fill")) {
    ASSIGN_OR_RETURN(s.fill, GetFloat(*b, "bottleneck", "fill"));
  }
  return Status::Ok();
}

// Optional: provenance.metrics.{validation_,}tail_accuracy.<rate> and
// {validation_,}exit_accuracy. The scheduler uses them to weigh an offload;
// anything missing or out of [0, 1] reads as unknown (0).
void ReadMeasuredAccuracy(const json& root, Manifest& m) {
  m.rate_accuracy.assign(m.rates.size(), 0.0);
  if (!root.contains("provenance") || !root["provenance"].is_object()) return;
  const json& prov = root["provenance"];
  if (!prov.contains("metrics") || !prov["metrics"].is_object()) return;
  const json& metrics = prov["metrics"];
  auto number = [](const json& j, const std::string& key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0.0;
    const double v = j[key].get<double>();
    return v >= 0.0 && v <= 1.0 ? v : 0.0;
  };
  for (const char* prefix : {"", "validation_"}) {
    const std::string tail_key = std::string(prefix) + "tail_accuracy";
    if (metrics.contains(tail_key))
      for (size_t r = 0; r < m.rates.size(); ++r)
        if (double v = number(metrics[tail_key], m.rates[r].name); v > 0.0) m.rate_accuracy[r] = v;
    if (double v = number(metrics, std::string(prefix) + "exit_accuracy"); v > 0.0)
      m.exit_accuracy = v;
  }
}

}  // namespace

int Manifest::RateIndex(const std::string& rate_name) const {
  for (size_t i = 0; i < rates.size(); ++i)
    if (rates[i].name == rate_name) return static_cast<int>(i);
  return -1;
}

float Manifest::ExitErrorRate(float confidence) const {
  for (const auto& bin : calibration)
    if (confidence <= bin.confidence_max) return bin.error_rate;
  return calibration.empty() ? 1.0f - confidence : calibration.back().error_rate;
}

float Manifest::CloudAccuracy(float confidence, int rate_index) const {
  for (const auto& bin : calibration)
    if (confidence <= bin.confidence_max || &bin == &calibration.back())
      return rate_index >= 0 && rate_index < static_cast<int>(bin.cloud_accuracy.size())
                 ? bin.cloud_accuracy[rate_index]
                 : -1.0f;
  return -1.0f;
}

std::string FingerprintText(const Manifest& m) {
  std::ostringstream text;
  text << m.name << '|' << m.bottleneck.channels << 'x' << m.bottleneck.height << 'x'
       << m.bottleneck.width << '|' << m.bottleneck.min << ',' << m.bottleneck.max << ','
       << m.bottleneck.fill << '|' << m.classes.size();
  for (const auto& r : m.rates) text << '|' << r.name << ':' << r.bits << ':' << r.channels;
  return text.str();
}

std::uint32_t ComputeFingerprint(const Manifest& m) {
  std::uint32_t hash = 2166136261u;
  for (unsigned char c : FingerprintText(m)) hash = (hash ^ c) * 16777619u;
  // The entropy model too: edge and cloud must code with the same tables.
  for (const auto& r : m.rates)
    for (std::uint16_t f : r.context_frequencies) {
      hash = (hash ^ (f & 0xFF)) * 16777619u;
      hash = (hash ^ (f >> 8)) * 16777619u;
    }
  return hash;
}

Result<Manifest> ParseManifest(const std::string& json_text, const std::filesystem::path& dir) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("manifest.json is not valid JSON: ") + e.what());
  }
  if (!root.is_object()) return InvalidArgument("manifest.json must hold a JSON object");
  Manifest m;
  m.dir = dir;
  ASSIGN_OR_RETURN(std::string format, GetString(root, "", "format"));
  if (format != "deepcut-model/1")
    return InvalidArgument("format is '" + format + "', this runtime reads 'deepcut-model/1'");
  ASSIGN_OR_RETURN(m.name, GetString(root, "", "name"));
  RETURN_IF_ERROR(ParseInput(root, m));
  RETURN_IF_ERROR(ParseBottleneck(root, m));
  RETURN_IF_ERROR(ParseRates(root, m));
  ASSIGN_OR_RETURN(const json* classes, Member(root, "", "classes"));
  if (!classes->is_array() || classes->size() < 2)
    return InvalidArgument("classes must be an array of at least 2 names");
  for (const auto& c : *classes) {
    if (!c.is_string()) return InvalidArgument("classes must hold strings");
    m.classes.push_back(c.get<std::string>());
  }
  RETURN_IF_ERROR(ParseCalibration(root, m));
  if (root.contains("fusion")) RETURN_IF_ERROR(ParseFusion(root["fusion"], m));
  ASSIGN_OR_RETURN(const json* files, Member(root, "", "files"));
  ASSIGN_OR_RETURN(m.head_file, GetFile(*files, dir, "head"));
  ASSIGN_OR_RETURN(m.exit_file, GetFile(*files, dir, "exit"));
  ASSIGN_OR_RETURN(m.tail_file, GetFile(*files, dir, "tail"));
  m.fingerprint = ComputeFingerprint(m);
  if (root.contains("provenance") && root["provenance"].is_object() &&
      root["provenance"].contains("command") && root["provenance"]["command"].is_string())
    m.provenance_command = root["provenance"]["command"].get<std::string>();
  ReadMeasuredAccuracy(root, m);
  return m;
}

Result<Manifest> LoadManifest(const std::filesystem::path& dir) {
  auto path = dir / "manifest.json";
  std::ifstream in(path);
  if (!in) return NotFound("cannot open " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  auto result = ParseManifest(ss.str(), dir);
  if (!result.ok())
    return Status(result.status().code(), path.string() + ": " + result.status().message());
  return result;
}

}  // namespace deepcut::splitnet
