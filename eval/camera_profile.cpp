#include "eval/camera_profile.h"

#include <cmath>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <set>

namespace deepcut::eval {
namespace {

struct ParamSpec {
  std::string name;
  double min, max;
  bool min_open;  // (min, max] rather than [min, max]
  bool integer;
};

const std::map<std::string, std::vector<ParamSpec>>& Specs() {
  static const std::map<std::string, std::vector<ParamSpec>> specs{
      {"gain", {{"value", 0, 8, true, false}}},
      {"channel_gain",
       {{"b", 0, 8, true, false}, {"g", 0, 8, true, false}, {"r", 0, 8, true, false}}},
      {"gamma", {{"value", 0.1, 10, false, false}}},
      {"gaussian_noise", {{"sigma", 0, 100, false, false}}},
      {"shot_noise", {{"scale", 0, 50, false, false}}},
      {"blur", {{"sigma", 0, 20, true, false}}},
      {"sharpen", {{"amount", 0, 10, false, false}, {"sigma", 0, 20, true, false}}},
      {"resize", {{"scale", 0.05, 1, false, false}}},
      {"jpeg", {{"quality", 1, 100, false, true}}},
      {"webp", {{"quality", 1, 100, false, true}}},
  };
  return specs;
}

const std::map<std::string, int>& Interpolations() {
  static const std::map<std::string, int> m{{"nearest", cv::INTER_NEAREST},
                                            {"linear", cv::INTER_LINEAR},
                                            {"cubic", cv::INTER_CUBIC},
                                            {"area", cv::INTER_AREA},
                                            {"lanczos", cv::INTER_LANCZOS4}};
  return m;
}

std::string Range(const ParamSpec& p) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s%g, %g]", p.min_open ? "(" : "[", p.min, p.max);
  return buf;
}

Result<ProfileStep> ParseStep(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("op") || !j["op"].is_string())
    return InvalidArgument(where + ": a step is an object with a string \"op\"");
  ProfileStep step;
  step.op = j["op"].get<std::string>();
  auto spec = Specs().find(step.op);
  if (spec == Specs().end()) {
    std::string known;
    for (const auto& [name, _] : Specs()) known += (known.empty() ? "" : ", ") + name;
    return InvalidArgument(where + ": unknown step \"" + step.op + "\" (known: " + known + ")");
  }
  std::set<std::string> allowed{"op"};
  for (const auto& p : spec->second) {
    allowed.insert(p.name);
    if (!j.contains(p.name) || !j[p.name].is_number())
      return InvalidArgument(where + " (" + step.op + "): needs a number \"" + p.name + "\"");
    const double v = j[p.name].get<double>();
    const bool low = p.min_open ? v <= p.min : v < p.min;
    if (!std::isfinite(v) || low || v > p.max)
      return InvalidArgument(where + " (" + step.op + "): " + p.name + " = " + j[p.name].dump() +
                             " is out of range " + Range(p));
    if (p.integer && v != std::floor(v))
      return InvalidArgument(where + " (" + step.op + "): " + p.name + " must be an integer");
    step.values.push_back(v);
  }
  if (step.op == "resize") {
    for (const char* key : {"down", "up"}) {
      allowed.insert(key);
      std::string name = key[0] == 'd' ? "area" : "linear";
      if (j.contains(key)) {
        if (!j[key].is_string() || !Interpolations().count(j[key].get<std::string>()))
          return InvalidArgument(where + " (resize): " + key + " = " + j[key].dump() +
                                 " is not one of nearest, linear, cubic, area, lanczos");
        name = j[key].get<std::string>();
      }
      (key[0] == 'd' ? step.down : step.up) = name;
    }
  }
  for (const auto& [key, _] : j.items())
    if (!allowed.count(key))
      return InvalidArgument(where + " (" + step.op + "): unknown parameter \"" + key + "\"");
  return step;
}

cv::Mat Pointwise(const cv::Mat& img, const std::vector<double>& gains, double gamma) {
  cv::Mat f;
  img.convertTo(f, CV_32F);
  std::vector<cv::Mat> ch;
  cv::split(f, ch);
  for (size_t c = 0; c < ch.size(); ++c) {
    if (!gains.empty()) ch[c] *= gains[c];
    if (gamma != 1.0) {
      cv::min(cv::max(ch[c], 0.0), 255.0, ch[c]);
      cv::pow(ch[c] / 255.0, gamma, ch[c]);
      ch[c] *= 255.0;
    }
  }
  cv::merge(ch, f);
  cv::Mat out;
  f.convertTo(out, CV_8U);  // rounds and saturates
  return out;
}

}  // namespace

std::vector<std::string> StepParameters(const std::string& op) {
  std::vector<std::string> names;
  if (auto it = Specs().find(op); it != Specs().end())
    for (const auto& p : it->second) names.push_back(p.name);
  return names;
}

Result<std::vector<Profile>> ParseProfiles(const nlohmann::json& doc, const std::string& what) {
  if (!doc.is_object() || doc.value("format", std::string()) != "deepcut-profiles/1")
    return InvalidArgument(what +
                           ": not a profile file (\"format\" must be \"deepcut-profiles/1\")");
  if (!doc.contains("profiles") || !doc["profiles"].is_array() || doc["profiles"].empty())
    return InvalidArgument(what + ": \"profiles\" must be a non-empty list");
  std::vector<Profile> out;
  std::set<std::string> names;
  for (size_t i = 0; i < doc["profiles"].size(); ++i) {
    const auto& p = doc["profiles"][i];
    const std::string where = what + ": profile " + std::to_string(i);
    if (!p.is_object() || !p.contains("name") || !p["name"].is_string() ||
        p["name"].get<std::string>().empty())
      return InvalidArgument(where + " needs a non-empty string \"name\"");
    Profile profile;
    profile.name = p["name"].get<std::string>();
    if (!names.insert(profile.name).second)
      return InvalidArgument(where + ": the name \"" + profile.name + "\" is used twice");
    profile.description = p.value("description", std::string());
    if (!p.contains("steps") || !p["steps"].is_array())
      return InvalidArgument(where + " (" + profile.name + ") needs a list \"steps\"");
    for (size_t s = 0; s < p["steps"].size(); ++s) {
      ASSIGN_OR_RETURN(auto step, ParseStep(p["steps"][s], where + " (" + profile.name +
                                                               "), step " + std::to_string(s)));
      profile.steps.push_back(std::move(step));
    }
    out.push_back(std::move(profile));
  }
  return out;
}

Result<std::vector<Profile>> LoadProfiles(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(path + ": cannot open the profile file");
  nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
  if (doc.is_discarded()) return InvalidArgument(path + ": not valid JSON");
  return ParseProfiles(doc, path);
}

Result<cv::Mat> ApplyProfile(const Profile& profile, const cv::Mat& image, std::uint64_t seed) {
  if (image.empty() || image.depth() != CV_8U)
    return InvalidArgument("profiles apply to 8-bit images");
  cv::Mat img;
  if (image.channels() == 1)
    cv::cvtColor(image, img, cv::COLOR_GRAY2BGR);
  else if (image.channels() == 3)
    img = image.clone();
  else
    return InvalidArgument("profiles apply to gray or BGR images");
  std::mt19937_64 rng(seed);
  try {
    for (const auto& s : profile.steps) {
      const auto& v = s.values;
      if (s.op == "gain") {
        img = Pointwise(img, {v[0], v[0], v[0]}, 1.0);
      } else if (s.op == "channel_gain") {
        img = Pointwise(img, {v[0], v[1], v[2]}, 1.0);
      } else if (s.op == "gamma") {
        img = Pointwise(img, {}, v[0]);
      } else if (s.op == "gaussian_noise" || s.op == "shot_noise") {
        cv::Mat f;
        img.convertTo(f, CV_32F);
        std::normal_distribution<float> n01(0.0f, 1.0f);
        float* p = f.ptr<float>();
        for (size_t i = 0; i < f.total() * f.channels(); ++i) {
          const float sd = s.op == "gaussian_noise" ? static_cast<float>(v[0])
                                                    : std::sqrt(static_cast<float>(v[0]) * p[i]);
          p[i] += sd * n01(rng);
        }
        f.convertTo(img, CV_8U);
      } else if (s.op == "blur") {
        cv::GaussianBlur(img, img, cv::Size(0, 0), v[0]);
      } else if (s.op == "sharpen") {
        cv::Mat blurred;
        cv::GaussianBlur(img, blurred, cv::Size(0, 0), v[1]);
        cv::addWeighted(img, 1.0 + v[0], blurred, -v[0], 0.0, img);
      } else if (s.op == "resize") {
        const cv::Size full = img.size();
        const cv::Size small(std::max(1, static_cast<int>(std::lround(full.width * v[0]))),
                             std::max(1, static_cast<int>(std::lround(full.height * v[0]))));
        cv::Mat down;
        cv::resize(img, down, small, 0, 0, Interpolations().at(s.down));
        cv::resize(down, img, full, 0, 0, Interpolations().at(s.up));
      } else if (s.op == "jpeg" || s.op == "webp") {
        std::vector<std::uint8_t> buf;
        const int flag = s.op == "jpeg" ? cv::IMWRITE_JPEG_QUALITY : cv::IMWRITE_WEBP_QUALITY;
        if (!cv::imencode(s.op == "jpeg" ? ".jpg" : ".webp", img, buf,
                          {flag, static_cast<int>(v[0])}))
          return Internal(profile.name + ": " + s.op + " encoding failed");
        img = cv::imdecode(buf, cv::IMREAD_COLOR);
        if (img.empty()) return Internal(profile.name + ": " + s.op + " decoding failed");
      }
    }
  } catch (const cv::Exception& e) {
    return Internal(profile.name + ": " + e.what());
  }
  return img;
}

}  // namespace deepcut::eval
