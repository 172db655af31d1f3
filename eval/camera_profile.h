// Camera profiles: what a device's camera and software do to an image before
// the model sees it, as a list of steps (docs/instability.md, "Profiles").
//
// A profile file is JSON: {"format": "deepcut-profiles/1", "profiles": [{"name",
// "description", "steps": [{"op": ..., parameters}...]}...]}. Every step works
// on an 8-bit BGR image and ends by rounding back to 8 bits, as a camera's
// pipeline does. The steps:
//   gain {value}                     every channel times value
//   channel_gain {b, g, r}           white-balance-like gains per channel
//   gamma {value}                    255 * (x / 255) ^ value
//   gaussian_noise {sigma}           additive, in grey levels
//   shot_noise {scale}               signal-dependent: variance scale * x
//   blur {sigma}                     Gaussian blur
//   sharpen {amount, sigma}          unsharp mask: x + amount * (x - blur(x, sigma))
//   resize {scale, down, up}         down by scale and back, with the named
//                                    interpolations (nearest|linear|cubic|area|lanczos)
//   jpeg {quality}, webp {quality}   OpenCV's encoder and decoder at that quality
// The noise steps draw from a generator seeded per (profile, image), so a
// profile applied to an image is reproducible. Parse refuses an unknown op, a
// missing or unknown parameter and a value out of range, naming the profile,
// the step and the value.
//
// Thread-safety: a Profile is plain data; Apply has no shared state.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace deepcut::eval {

struct ProfileStep {
  std::string op;
  std::vector<double> values;  // the op's parameters, in the order of StepParameters(op)
  std::string down, up;        // resize only: the interpolation names
};

struct Profile {
  std::string name;
  std::string description;
  std::vector<ProfileStep> steps;
};

// The numeric parameters of `op` in order; empty for an unknown op.
std::vector<std::string> StepParameters(const std::string& op);

// The profiles of a deepcut-profiles/1 document (`what` names it in messages).
Result<std::vector<Profile>> ParseProfiles(const nlohmann::json& doc, const std::string& what);
Result<std::vector<Profile>> LoadProfiles(const std::string& path);

// `image` (8-bit gray or BGR) through the profile's steps; the result is 8-bit
// BGR. `seed` seeds the noise steps.
Result<cv::Mat> ApplyProfile(const Profile& profile, const cv::Mat& image, std::uint64_t seed);

}  // namespace deepcut::eval
