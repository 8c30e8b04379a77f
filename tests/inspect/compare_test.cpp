#include "mla/inspect/compare.hpp"

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "../convert/convert_test_support.hpp"
#include "inspect_test_support.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/convert_layer.hpp"
#include "mla/convert/pipeline.hpp"
#include "seed.hpp"

namespace {

using mla::ref::matrix;

// A two-layer gpt-oss-like teacher (biases, sinks, window, YaRN) and its conversion to MLA at a small rank.
struct teacher_student {
  mla::model::model_config cfg;
  mla::model::model_weights<float> w;
  mla::convert::model_conversion<float> conv;
  explicit teacher_student(std::mt19937_64& gen) {
    const mla::test::layer_spec spec = mla::test::with_gpt_oss_features({}, 12);
    mla::test::random_model(gen, 2, spec, cfg, w);
    // Logits of O(1), so the next-token distributions are not one-hot.
    w.final_norm = (0.25f * (w.final_norm + mla::test::randn_vec<float>(gen, spec.hidden, 0.2))).eval();
    const mla::model::decoder<float> dec(cfg, w);
    mla::convert::pipeline_options o;
    o.layer.rope = {mla::convert::rope_strategy::rorope, 8, 0};
    o.layer.factor.method = mla::convert::factor_method::weight_svd;
    o.layer.rank = mla::test::pick(gen, 4, 12);
    o.require_supported_shape = false;
    conv = mla::convert::convert_model(
        cfg, w, mla::convert::calibrate(dec, mla::test::random_windows(gen, cfg.vocab_size, 4, 24)), o);
  }
};

struct compare_xn_recorder : mla::model::observer<float> {
  std::vector<matrix<float>> xn;
  void attention_input(int l, const matrix<float>& x, long) override {
    if (int(xn.size()) <= l) xn.resize(std::size_t(l) + 1);
    xn[std::size_t(l)] = x;
  }
};

// log-softmax of one row in float64 by plain loops.
std::vector<double> row_log_softmax(const matrix<float>& z, long t) {
  double m = -1e300;
  for (long v = 0; v < z.cols(); ++v) m = std::max(m, double(z(t, v)));
  double s = 0;
  for (long v = 0; v < z.cols(); ++v) s += std::exp(double(z(t, v)) - m);
  std::vector<double> out(std::size_t(z.cols()));
  for (long v = 0; v < z.cols(); ++v) out[std::size_t(v)] = double(z(t, v)) - m - std::log(s);
  return out;
}

int row_argmax(const matrix<float>& z, long t) {
  int best = 0;
  for (long v = 1; v < z.cols(); ++v)
    if (z(t, v) > z(t, best)) best = int(v);
  return best;
}

void compare_close(double got, double want, const char* what) {
  BOOST_TEST_CONTEXT(what) { BOOST_TEST(std::abs(got - want) <= 1e-9 * (1.0 + std::abs(want)), got << " vs " << want); }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(inspect_compare)

// Every number of the report against a direct float64 computation from the two models' logits and, per layer,
// the conversion's own teacher-forced error (convert::attention_output_error) on the teacher's recorded inputs.
BOOST_AUTO_TEST_CASE(against_a_direct_computation) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const teacher_student ts(gen);
    const mla::model::decoder<float> teacher(ts.cfg, ts.w), student(ts.conv.config, ts.conv.weights);
    const int n = mla::test::pick(gen, 16, 40);
    const std::vector<int> tokens = mla::test::random_tokens(gen, ts.cfg.vocab_size, n);
    mla::inspect::compare_options opt;
    opt.worst = 4;
    opt.context = 3;
    opt.decode = [](const std::vector<int>& ids) {
      std::string s;
      for (int id : ids) s += "<" + std::to_string(id) + ">";
      return s;
    };
    const mla::inspect::compare_report r = mla::inspect::compare(teacher, student, tokens, opt, "t", "s");

    const matrix<float> zt = teacher.forward(tokens), zs = student.forward(tokens);
    std::vector<double> kl;
    long agree = 0;
    for (long t = 0; t < n; ++t) {
      const std::vector<double> lp = row_log_softmax(zt, t), lq = row_log_softmax(zs, t);
      double k = 0;
      for (std::size_t v = 0; v < lp.size(); ++v) k += std::exp(lp[v]) * (lp[v] - lq[v]);
      kl.push_back(k);
      agree += row_argmax(zt, t) == row_argmax(zs, t);
      BOOST_TEST(r.teacher_top1[std::size_t(t)] == row_argmax(zt, t));
      BOOST_TEST(r.student_top1[std::size_t(t)] == row_argmax(zs, t));
    }
    BOOST_TEST_REQUIRE(r.kl.size() == std::size_t(n));
    for (long t = 0; t < n; ++t) compare_close(r.kl[std::size_t(t)], kl[std::size_t(t)], "kl");
    std::vector<double> sorted = kl;
    std::sort(sorted.begin(), sorted.end());
    double mean = 0;
    for (double k : kl) mean += k / n;
    compare_close(r.kl_mean, mean, "mean");
    compare_close(r.kl_p50, sorted[std::size_t((n + 1) / 2 - 1)], "p50");  // ceil(n/2) - 1
    compare_close(r.kl_p90, sorted[std::size_t(std::ceil(0.9 * n) - 1)], "p90");
    compare_close(r.kl_max, sorted.back(), "max");
    compare_close(r.top1_agreement, double(agree) / n, "top-1");
    BOOST_TEST(r.kl_max > 1e-6);  // the conversion at a small rank changes the distributions

    // Worst positions: the 4 largest KLs, largest first, with their context and next token.
    BOOST_TEST_REQUIRE(r.worst.size() == 4u);
    for (std::size_t i = 0; i < r.worst.size(); ++i) {
      const auto& w = r.worst[i];
      compare_close(w.kl, sorted[sorted.size() - 1 - i], "worst kl");
      compare_close(kl[std::size_t(w.position)], w.kl, "worst position");
      const long lo = std::max(0L, w.position - 2);
      BOOST_TEST(w.context == std::vector<int>(tokens.begin() + lo, tokens.begin() + w.position + 1),
                 boost::test_tools::per_element());
      BOOST_TEST(w.next == (w.position + 1 < n ? tokens[std::size_t(w.position + 1)] : -1));
      BOOST_TEST(w.teacher_top1 == row_argmax(zt, w.position));
      BOOST_TEST(w.student_top1 == row_argmax(zs, w.position));
      std::string ctx;
      for (long p = lo; p <= w.position; ++p) ctx += "<" + std::to_string(tokens[std::size_t(p)]) + ">";
      BOOST_TEST(w.context_text == ctx);
      BOOST_TEST(w.student_text == "<" + std::to_string(w.student_top1) + ">");
    }

    // Layer errors: the student's layer on the teacher's input of that layer.
    compare_xn_recorder rec;
    teacher.forward(tokens, &rec);
    BOOST_TEST_REQUIRE(r.layer_error.size() == 2u);
    for (std::size_t l = 0; l < 2; ++l) {
      BOOST_TEST((r.student_attention[l] == mla::model::attention_kind::mla));
      const double want = mla::convert::attention_output_error(ts.w.layers[l].gqa, ts.conv.weights.layers[l].mla,
                                                               std::vector<matrix<float>>{rec.xn[l]});
      compare_close(r.layer_error[l], want, "layer error");
      BOOST_TEST(r.layer_error[l] > 1e-4);
    }
    const std::string table = mla::inspect::compare_table(r);
    BOOST_TEST(table.find("top-1 agreement") != std::string::npos);
    const std::string csv = mla::inspect::compare_csv(r, tokens);
    BOOST_TEST(std::count(csv.begin(), csv.end(), '\n') == 1 + n + 2 + 4);
  }
}

// A model against itself: KL 0 at every position, every top-1 the same, every layer error 0.
BOOST_AUTO_TEST_CASE(a_model_against_itself) {
  const std::uint64_t seed = mla::test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed) {
    std::mt19937_64 gen(seed);
    const mla::test::inspect_model im = mla::test::random_inspect_model(gen);
    const mla::model::decoder<float> m(im.cfg, im.w);
    const std::vector<int> tokens = mla::test::random_tokens(gen, im.cfg.vocab_size, 20);
    const mla::inspect::compare_report r = mla::inspect::compare(m, m, tokens);
    BOOST_TEST(r.kl_max == 0.0);
    BOOST_TEST(r.top1_agreement == 1.0);
    for (double e : r.layer_error) BOOST_TEST(e == 0.0);
    BOOST_TEST(r.worst.size() == 5u);
  }
}

BOOST_AUTO_TEST_CASE(mismatched_models_are_refused) {
  std::mt19937_64 gen(mla::test::test_seed());
  const mla::test::inspect_model im = mla::test::random_inspect_model(gen);
  mla::model::model_config cfg2 = im.cfg;
  mla::model::model_weights<float> w2 = im.w;
  cfg2.n_layers = 2, cfg2.layers.pop_back(), w2.layers.pop_back();
  const mla::model::decoder<float> a(im.cfg, im.w), b(cfg2, w2);
  BOOST_CHECK_EXCEPTION(mla::inspect::compare(a, b, {1, 2, 3}), mla::error, [](const mla::error& e) {
    return std::string(e.what()).find("the teacher has 3 layers, the student 2") != std::string::npos;
  });
}

BOOST_AUTO_TEST_SUITE_END()
