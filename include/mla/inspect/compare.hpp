// mla::inspect compare: a teacher (the original model) against a student (e.g. its conversion) on one window of
// tokens (positions 0..n-1), everything in float64 from the two forwards:
//   kl[t]            KL(teacher_t || student_t) of the next-token distributions at position t (the softmax of each
//                    model's logits, log-softmax in float64); summarised by its mean and nearest-rank p50, p90
//                    (the value at sorted index ceil(q n) - 1) and max.
//   top1_agreement   the fraction of positions where both models' most likely next token (argmax) is the same.
//   layer_error[l]   ||a_s - a_t||_F / ||a_t||_F, the student's layer-l attention output a_s (after o_proj, fresh
//                    cache) against the teacher's a_t, both on the teacher's attention input of layer l (an observer
//                    on the teacher's forward feeds it to the student's layer), like the conversion's stage report:
//                    the error the layer itself adds, not the drift of the layers before it.
//   worst            the `worst` positions with the largest KL, largest first, with the token ids of their context
//                    (the `context` tokens up to and including t), the next token of the text and both top-1s;
//                    `decode`, when given, turns each into text.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/eval/next_token_kl.hpp"
#include "mla/inspect/csv.hpp"
#include "mla/model/decoder.hpp"

namespace mla::inspect {

struct worst_token {
  long position = 0;
  double kl = 0;
  std::vector<int> context;  // token ids at positions max(0, t - context + 1)..t
  int next = -1;             // the text's token at t + 1 (-1 at the last position)
  int teacher_top1 = 0, student_top1 = 0;
  std::string context_text, next_text, teacher_text, student_text;  // decoded, when a decoder was given
};

struct compare_report {
  std::string teacher, student;  // labels (the models' paths)
  long tokens = 0;
  std::vector<double> kl;                       // [tokens] KL(teacher || student) per position
  std::vector<int> teacher_top1, student_top1;  // [tokens] each model's argmax next token per position
  double kl_mean = 0, kl_p50 = 0, kl_p90 = 0, kl_max = 0;
  double top1_agreement = 0;
  std::vector<model::attention_kind> teacher_attention, student_attention;  // [n_layers]
  std::vector<double> layer_error;                                          // [n_layers]
  std::vector<worst_token> worst;                                           // largest KL first
};

struct compare_options {
  int worst = 5;    // positions listed
  int context = 8;  // tokens of context shown with each (the token at t included)
  std::function<std::string(const std::vector<int>&)> decode;  // token ids -> text, or empty
};

namespace detail {

// Nearest-rank quantile of sorted values: sorted[ceil(q n) - 1].
inline double nearest_rank(const std::vector<double>& sorted, double q) {
  const auto n = static_cast<long>(sorted.size());
  const long i = std::clamp(static_cast<long>(std::ceil(q * double(n))) - 1, 0L, n - 1);
  return sorted[std::size_t(i)];
}

// Observer on the teacher's forward: at each layer, runs the student's layer on the teacher's attention input and
// accumulates ||a_s - a_t||^2 and ||a_t||^2 when the teacher's output arrives.
template <class T>
class layer_error_observer : public model::observer<T> {
 public:
  explicit layer_error_observer(const model::decoder<T>& student) : s_(student) {
    num_.assign(std::size_t(student.config().n_layers), 0.0);
    den_ = num_;
  }
  void attention_input(int l, const ref::matrix<T>& xn, long first_pos) override {
    check(first_pos == 0, "mla::inspect::compare: one window from position 0 per forward, found a chunk at ",
          first_pos);
    const auto li = std::size_t(l);
    ref::gqa_cache<T> gc;
    ref::mla_cache<T> mc;
    student_out_ =
        model::prefill_attention(s_.config().layers[li].attention, s_.weights().layers[li], xn, gc, mc, s_.mla_form());
  }
  void attention_output(int l, const ref::matrix<T>& out) override {
    const auto li = std::size_t(l);
    const ref::matrix<double> t = out.template cast<double>();
    num_[li] += (student_out_.template cast<double>() - t).squaredNorm();
    den_[li] += t.squaredNorm();
  }
  std::vector<double> errors() const {
    std::vector<double> e(num_.size());
    for (std::size_t l = 0; l < e.size(); ++l) e[l] = den_[l] > 0 ? std::sqrt(num_[l] / den_[l]) : std::sqrt(num_[l]);
    return e;
  }

 private:
  const model::decoder<T>& s_;
  ref::matrix<T> student_out_;
  std::vector<double> num_, den_;
};

}  // namespace detail

template <class T>
compare_report compare(const model::decoder<T>& teacher, const model::decoder<T>& student,
                       const std::vector<int>& tokens, const compare_options& opt = {},
                       const std::string& teacher_label = "", const std::string& student_label = "") {
  const char* who = "mla::inspect::compare";
  check(!tokens.empty(), who, ": needs at least 1 token");
  const model::model_config &tc = teacher.config(), &sc = student.config();
  check(tc.vocab_size == sc.vocab_size, who, ": the teacher's vocabulary has ", tc.vocab_size,
        " tokens, the student's ", sc.vocab_size);
  check(tc.n_layers == sc.n_layers, who, ": the teacher has ", tc.n_layers, " layers, the student ", sc.n_layers);
  check(tc.hidden == sc.hidden, who, ": the teacher's hidden size is ", tc.hidden, ", the student's ", sc.hidden);
  check(opt.worst >= 0 && opt.context >= 1, who, ": worst must be >= 0 and context >= 1, found ", opt.worst, " and ",
        opt.context);

  detail::layer_error_observer<T> obs(student);
  model::session<T> ts = teacher.new_session(/*trim_windows=*/false);  // full caches, like the student's layers
  const ref::matrix<T> zt = teacher.forward(ts, tokens, &obs);         // [n, vocab]
  const ref::matrix<T> zs = student.forward(tokens);                   // [n, vocab]
  compare_report r;
  r.teacher = teacher_label, r.student = student_label;
  r.tokens = long(tokens.size());
  r.layer_error = obs.errors();
  for (int l = 0; l < tc.n_layers; ++l) {
    r.teacher_attention.push_back(tc.layers[std::size_t(l)].attention);
    r.student_attention.push_back(sc.layers[std::size_t(l)].attention);
  }
  const Eigen::Index n = zt.rows();
  std::vector<int>&top_t = r.teacher_top1, &top_s = r.student_top1;
  top_t.resize(std::size_t(n)), top_s.resize(std::size_t(n));
  long agree = 0;
  for (Eigen::Index t = 0; t < n; ++t) {
    r.kl.push_back(eval::next_token_kl(zt.row(t), zs.row(t)));
    Eigen::Index it = 0, is = 0;
    zt.row(t).maxCoeff(&it);
    zs.row(t).maxCoeff(&is);
    top_t[std::size_t(t)] = int(it), top_s[std::size_t(t)] = int(is);
    agree += it == is;
  }
  std::vector<double> sorted = r.kl;
  std::sort(sorted.begin(), sorted.end());
  r.kl_mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / double(n);
  r.kl_p50 = detail::nearest_rank(sorted, 0.5);
  r.kl_p90 = detail::nearest_rank(sorted, 0.9);
  r.kl_max = sorted.back();
  r.top1_agreement = double(agree) / double(n);

  std::vector<long> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0L);
  std::stable_sort(order.begin(), order.end(),
                   [&](long x, long y) { return r.kl[std::size_t(x)] > r.kl[std::size_t(y)]; });
  for (std::size_t i = 0; i < std::min<std::size_t>(std::size_t(opt.worst), order.size()); ++i) {
    const long t = order[i];
    worst_token w;
    w.position = t;
    w.kl = r.kl[std::size_t(t)];
    w.context.assign(tokens.begin() + std::max(0L, t - opt.context + 1), tokens.begin() + t + 1);
    w.next = t + 1 < long(tokens.size()) ? tokens[std::size_t(t + 1)] : -1;
    w.teacher_top1 = top_t[std::size_t(t)], w.student_top1 = top_s[std::size_t(t)];
    if (opt.decode) {
      w.context_text = opt.decode(w.context);
      if (w.next >= 0) w.next_text = opt.decode({w.next});
      w.teacher_text = opt.decode({w.teacher_top1});
      w.student_text = opt.decode({w.student_top1});
    }
    r.worst.push_back(std::move(w));
  }
  return r;
}

namespace detail {
// Text for one table cell: control characters (newlines, tabs) shown escaped, so a row stays one line.
inline std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20)
      out += "?";
    else
      out += char(c);
  }
  return out;
}
}  // namespace detail

inline std::string compare_table(const compare_report& r) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "teacher %s\nstudent %s\n%ld tokens\n", r.teacher.c_str(), r.student.c_str(),
                r.tokens);
  out += line;
  std::snprintf(line, sizeof line,
                "KL(teacher || student) per token: mean %.6f  p50 %.6f  p90 %.6f  max %.6f\ntop-1 agreement %.4f\n",
                r.kl_mean, r.kl_p50, r.kl_p90, r.kl_max, r.top1_agreement);
  out += line;
  out += "layer teacher student  attention output rel. error (teacher's inputs)\n";
  for (std::size_t l = 0; l < r.layer_error.size(); ++l) {
    std::snprintf(line, sizeof line, "%5zu %7s %7s  %.6f\n", l, model::to_string(r.teacher_attention[l]),
                  model::to_string(r.student_attention[l]), r.layer_error[l]);
    out += line;
  }
  if (!r.worst.empty()) out += "worst tokens: position      KL  next | teacher top-1 | student top-1 | context\n";
  for (const auto& w : r.worst) {
    std::snprintf(line, sizeof line, "%22ld %9.4f  [%s] | [%s] | [%s] | %s\n", w.position, w.kl,
                  detail::printable(w.next_text.empty() ? std::to_string(w.next) : w.next_text).c_str(),
                  detail::printable(w.teacher_text.empty() ? std::to_string(w.teacher_top1) : w.teacher_text).c_str(),
                  detail::printable(w.student_text.empty() ? std::to_string(w.student_top1) : w.student_text).c_str(),
                  detail::printable(w.context_text).c_str());
    out += line;
  }
  return out;
}

// CSV in long form: one row per position (row "token": its token, KL, both top-1s), one per layer (row "layer":
// both attention kinds and the error), one per worst position (row "worst": its next token, KL, both top-1s).
inline std::string compare_csv(const compare_report& r, const std::vector<int>& tokens) {
  std::string out =
      "teacher,student,row,index,token,kl,teacher_top1,student_top1,teacher_attention,"
      "student_attention,attention_error\n";
  const std::string models = csv_quote(r.teacher) + "," + csv_quote(r.student) + ",";
  char num[256];
  for (std::size_t t = 0; t < r.kl.size(); ++t) {
    std::snprintf(num, sizeof num, "token,%zu,%d,%.9g,%d,%d,,,\n", t, t < tokens.size() ? tokens[t] : -1, r.kl[t],
                  r.teacher_top1[t], r.student_top1[t]);
    out += models + num;
  }
  for (std::size_t l = 0; l < r.layer_error.size(); ++l) {
    std::snprintf(num, sizeof num, "layer,%zu,,,,,%s,%s,%.9g\n", l, model::to_string(r.teacher_attention[l]),
                  model::to_string(r.student_attention[l]), r.layer_error[l]);
    out += models + num;
  }
  for (const auto& w : r.worst) {
    std::snprintf(num, sizeof num, "worst,%ld,%d,%.9g,%d,%d,,,\n", w.position, w.next, w.kl, w.teacher_top1,
                  w.student_top1);
    out += models + num;
  }
  return out;
}

inline nlohmann::json compare_json(const compare_report& r) {
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t l = 0; l < r.layer_error.size(); ++l)
    layers.push_back({{"layer", l},
                      {"teacher_attention", model::to_string(r.teacher_attention[l])},
                      {"student_attention", model::to_string(r.student_attention[l])},
                      {"attention_error", r.layer_error[l]}});
  nlohmann::json worst = nlohmann::json::array();
  for (const auto& w : r.worst)
    worst.push_back({{"position", w.position},
                     {"kl", w.kl},
                     {"context", w.context},
                     {"next", w.next},
                     {"teacher_top1", w.teacher_top1},
                     {"student_top1", w.student_top1},
                     {"context_text", w.context_text},
                     {"next_text", w.next_text},
                     {"teacher_text", w.teacher_text},
                     {"student_text", w.student_text}});
  return nlohmann::json{{"compare",
                         {{"teacher", r.teacher},
                          {"student", r.student},
                          {"tokens", r.tokens},
                          {"kl", r.kl},
                          {"teacher_top1", r.teacher_top1},
                          {"student_top1", r.student_top1},
                          {"kl_mean", r.kl_mean},
                          {"kl_p50", r.kl_p50},
                          {"kl_p90", r.kl_p90},
                          {"kl_max", r.kl_max},
                          {"top1_agreement", r.top1_agreement},
                          {"layers", layers},
                          {"worst", worst}}}};
}

}  // namespace mla::inspect
