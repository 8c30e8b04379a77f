// mla::convert distill_state: the end-to-end distillation's state between two steps, so that a long run stopped
// anywhere (Ctrl-C, a kill, a full disk, a power cut) continues where its last saved state was, with the loss
// curve and the weights of a run that never stopped.
//
// What the stage (distill_model.hpp) needs to continue: the step count, the trained tensors as they are and as
// they were at the best held-out loss, Adam's two moments and per-tensor scales, the held-out losses and curve
// so far. The window order is not saved: it is the seeded sampler's, replayed. The state names the run it
// belongs to by a fingerprint of the options that shape the trajectory, the token windows and the trained
// tensors at the stage's start; a state of any other run is refused.
//
// On disk (save_distill_state / load_distill_state): one safetensors file, written atomically, tensors in the
// model's float type (F32 or F64, exact), the integers and the fingerprint in the metadata:
//   param.<i>, best.<i>, m1.<i>, m2.<i>   [size_i]   the i-th trained tensor (distill.hpp trained_tensors order)
//   scale                                 [tensors]  F64, Adam's per-tensor RMS scales
//   losses                                [2]        F64, held-out KL of the input model and the best so far
//   curve                                 [k, 2]     F64, (step, held-out KL) at each validation so far
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/io/safetensors.hpp"

namespace mla::convert {

template <class T>
struct distill_model_state {
  using array = Eigen::Array<T, Eigen::Dynamic, 1>;
  std::string fingerprint;  // the run it belongs to (distill_model computes it)
  int step = 0;             // steps done
  int best_step = 0;
  double heldout_before = 0, best_loss = 0;   // held-out KL (nats per token) of the input and of the best model
  std::vector<std::pair<int, double>> curve;  // (step, held-out KL) at each validation so far
  std::vector<array> param, best, m1, m2;     // [tensors], each [size_i]
  std::vector<double> scale;                  // [tensors]
};

namespace detail {

// FNV-1a, 64 bits: enough to tell runs apart (not a defence against a crafted file).
class fnv1a {
 public:
  void bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 1099511628211ull;
  }
  template <class V>
  void value(const V& v) {
    static_assert(std::is_trivially_copyable_v<V>);
    bytes(&v, sizeof v);
  }
  std::string hex() const {
    static const char* digits = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 0; i < 16; ++i) s[std::size_t(i)] = digits[(h_ >> (60 - 4 * i)) & 15];
    return s;
  }

 private:
  std::uint64_t h_ = 1469598103934665603ull;
};

template <class T>
constexpr io::dtype state_dtype() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "distill state: float or double weights");
  return std::is_same_v<T, float> ? io::dtype::F32 : io::dtype::F64;
}

template <class A>
std::vector<std::uint8_t> raw_bytes(const A& a) {
  std::vector<std::uint8_t> out(std::size_t(a.size()) * sizeof(typename A::Scalar));
  if (!out.empty()) std::memcpy(out.data(), a.data(), out.size());
  return out;
}

}  // namespace detail

// Writes `s` to `path` atomically (readers see the previous state or this one, never a part).
template <class T>
void save_distill_state(const std::string& path, const distill_model_state<T>& s) {
  const std::size_t n = s.param.size();
  check(s.best.size() == n && s.m1.size() == n && s.m2.size() == n && s.scale.size() == n,
        "mla::convert::save_distill_state: inconsistent state (", n, " tensors)");
  io::safetensors_writer w;
  w.set_metadata("format", "mla end-to-end distillation state 1");
  w.set_metadata("fingerprint", s.fingerprint);
  w.set_metadata("step", std::to_string(s.step));
  w.set_metadata("best_step", std::to_string(s.best_step));
  w.set_metadata("tensors", std::to_string(n));
  for (std::size_t i = 0; i < n; ++i) {
    const auto size = static_cast<std::int64_t>(s.param[i].size());
    const std::string k = std::to_string(i);
    w.add("param." + k, detail::state_dtype<T>(), {size}, detail::raw_bytes(s.param[i]));
    w.add("best." + k, detail::state_dtype<T>(), {size}, detail::raw_bytes(s.best[i]));
    w.add("m1." + k, detail::state_dtype<T>(), {size}, detail::raw_bytes(s.m1[i]));
    w.add("m2." + k, detail::state_dtype<T>(), {size}, detail::raw_bytes(s.m2[i]));
  }
  w.add("scale", io::dtype::F64, {static_cast<std::int64_t>(n)},
        detail::raw_bytes(Eigen::Map<const Eigen::ArrayXd>(s.scale.data(), Eigen::Index(n))));
  w.add("losses", io::dtype::F64, {2}, detail::raw_bytes(Eigen::Array2d(s.heldout_before, s.best_loss)));
  Eigen::ArrayXd curve(Eigen::Index(2 * s.curve.size()));
  for (std::size_t i = 0; i < s.curve.size(); ++i)
    curve[Eigen::Index(2 * i)] = s.curve[i].first, curve[Eigen::Index(2 * i + 1)] = s.curve[i].second;
  w.add("curve", io::dtype::F64, {static_cast<std::int64_t>(s.curve.size()), 2}, detail::raw_bytes(curve));
  w.write(path);
}

// Reads a state save_distill_state wrote; every field is checked (a damaged or foreign file gives an error
// naming the file and the field).
// `path` names the file in messages; f is the file parsed (from disk, or from bytes in a test).
template <class T>
distill_model_state<T> load_distill_state(const io::safetensors_file& f, const std::string& path) {
  const auto& meta = f.metadata();
  auto field = [&](const std::string& key) -> const std::string& {
    const auto it = meta.find(key);
    check(it != meta.end(), "distillation state '", path, "': metadata field '", key, "' is missing");
    return it->second;
  };
  auto integer = [&](const std::string& key, long lo, long hi) {
    const std::string& v = field(key);
    char* end = nullptr;
    const long x = std::strtol(v.c_str(), &end, 10);
    check(!v.empty() && end && *end == 0 && x >= lo && x <= hi, "distillation state '", path, "': metadata field '",
          key, "' is '", v, "', expected an integer in [", lo, ", ", hi, "]");
    return x;
  };
  check(field("format") == "mla end-to-end distillation state 1", "distillation state '", path, "': format '",
        field("format"), "', expected 'mla end-to-end distillation state 1'");
  distill_model_state<T> s;
  s.fingerprint = field("fingerprint");
  s.step = int(integer("step", 0, 1 << 30));
  s.best_step = int(integer("best_step", 0, s.step));
  const auto n = std::size_t(integer("tensors", 0, 1 << 20));
  auto read = [&](const std::string& name, io::dtype type, long rows, long cols) {
    const io::tensor_view& t = f.tensor(name);
    const std::vector<std::int64_t> want =
        cols < 0 ? std::vector<std::int64_t>{rows} : std::vector<std::int64_t>{rows, cols};
    check(t.type == type && (rows < 0 || t.shape == want) && (rows >= 0 || t.shape.size() == 1), "distillation state '",
          path, "': tensor '", name, "' is ", io::dtype_name(t.type), " ", io::shape_string(t.shape), ", expected ",
          io::dtype_name(type), rows < 0 ? " [n]" : " " + io::shape_string(want));
    return &t;
  };
  auto load_array = [&](const std::string& name, long size) {
    const io::tensor_view* t = read(name, detail::state_dtype<T>(), size, -1);
    typename distill_model_state<T>::array a(Eigen::Index(t->numel));
    if (t->numel) std::memcpy(a.data(), t->bytes.data, std::size_t(t->numel) * sizeof(T));
    return a;
  };
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    s.param.push_back(load_array("param." + k, -1));
    const long size = long(s.param.back().size());
    s.best.push_back(load_array("best." + k, size));
    s.m1.push_back(load_array("m1." + k, size));
    s.m2.push_back(load_array("m2." + k, size));
  }
  auto doubles = [&](const io::tensor_view* t) {
    std::vector<double> v(std::size_t(t->numel));
    if (!v.empty()) std::memcpy(v.data(), t->bytes.data, v.size() * sizeof(double));
    return v;
  };
  s.scale = doubles(read("scale", io::dtype::F64, long(n), -1));
  const std::vector<double> losses = doubles(read("losses", io::dtype::F64, 2, -1));
  s.heldout_before = losses[0], s.best_loss = losses[1];
  const io::tensor_view& c = f.tensor("curve");
  check(c.type == io::dtype::F64 && c.shape.size() == 2 && c.shape[1] == 2, "distillation state '", path,
        "': tensor 'curve' is ", io::dtype_name(c.type), " ", io::shape_string(c.shape), ", expected F64 [k, 2]");
  const std::vector<double> curve = doubles(&c);
  for (std::size_t i = 0; i + 1 < curve.size(); i += 2) {
    check(curve[i] >= 1 && curve[i] <= s.step && curve[i] == double(int(curve[i])), "distillation state '", path,
          "': curve step ", curve[i], " outside [1, ", s.step, "]");
    s.curve.emplace_back(int(curve[i]), curve[i + 1]);
  }
  return s;
}

template <class T>
distill_model_state<T> load_distill_state(const std::string& path) {
  return load_distill_state<T>(io::safetensors_file::open(path), path);
}

}  // namespace mla::convert
