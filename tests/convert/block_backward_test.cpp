// The input gradients of the frozen blocks the end-to-end distillation carries its gradient through
// (block_backward.hpp), against central finite differences in double on fresh random inputs: the loss is
// sum(block(x) o R) for a random R, and every entry of d loss / d x is checked.
#include "mla/convert/block_backward.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <random>

#include "convert_test_support.hpp"
#include "random.hpp"
#include "random_layers.hpp"

namespace {

using mla::ref::matrix;

// Checks grad [n, d] = d/dx sum(f(x) o r) entry by entry against central differences; returns the largest
// error relative to the gradient's largest entry.
double worst_gradient_error(const std::function<matrix<double>(const matrix<double>&)>& f, matrix<double> x,
                            const matrix<double>& r, const matrix<double>& grad) {
  const double scale = grad.cwiseAbs().maxCoeff();
  BOOST_TEST(scale > 0);
  double worst = 0;
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double keep = x.data()[i], h = 1e-6 * std::max(1.0, std::abs(keep));
    x.data()[i] = keep + h;
    const double up = f(x).cwiseProduct(r).sum();
    x.data()[i] = keep - h;
    const double down = f(x).cwiseProduct(r).sum();
    x.data()[i] = keep;
    worst = std::max(worst, std::abs((up - down) / (2 * h) - grad.data()[i]) / scale);
  }
  return worst;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(block_backward)

BOOST_AUTO_TEST_CASE(rms_norm_and_swiglu) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const int n = 7, d = 24, inter = 40;
    const matrix<double> x = mla::test::randn<double>(gen, n, d, 1.5), r = mla::test::randn<double>(gen, n, d, 1.0);
    const mla::ref::vector<double> w = (mla::ref::vector<double>::Ones(d) + mla::test::randn_vec<double>(gen, d, 0.3));
    auto norm = [&](const matrix<double>& v) { return mla::ref::rms_norm(v, w, 1e-5); };
    BOOST_TEST(worst_gradient_error(norm, x, r, mla::convert::rms_norm_backward(x, w, 1e-5, r)) <= 1e-7);

    mla::ref::swiglu_mlp<double> mlp;
    mlp.w_gate = mla::test::randn<double>(gen, inter, d, 0.4);
    mlp.w_up = mla::test::randn<double>(gen, inter, d, 0.4);
    mlp.w_down = mla::test::randn<double>(gen, d, inter, 0.2);
    mla::ref::swiglu_intermediates<double> kept;
    mlp.forward(x, &kept);
    auto f = [&](const matrix<double>& v) { return mlp.forward(v); };
    BOOST_TEST(worst_gradient_error(f, x, r, mla::convert::swiglu_backward(mlp, kept, r)) <= 1e-7);
  }
}

// gpt-oss's MoE: top-2 of 5 experts, biases, the clamped SwiGLU with a limit low enough that both clamps engage
// on some entries, and the routing weights' own dependence on x (a backward without the router term fails).
BOOST_AUTO_TEST_CASE(moe_through_experts_clamps_and_router) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const int n = 9, d = 16, inter = 12;
    const auto moe = mla::test::random_moe<double>(gen, d, inter, 5, 2, 1.0);
    const matrix<double> x = mla::test::randn<double>(gen, n, d, 1.0), r = mla::test::randn<double>(gen, n, d, 1.0);
    // Both clamps engage somewhere on these inputs (else the test would not see their derivative).
    long gate_clamped = 0, up_clamped = 0;
    mla::ref::moe_expert<double> ex;
    for (int e = 0; e < moe.n_experts; ++e) {
      moe.experts->load(e, ex);
      const matrix<double> u = (x * ex.w_gate_up.transpose()).rowwise() + ex.b_gate_up.transpose();
      for (Eigen::Index t = 0; t < n; ++t)
        for (int k = 0; k < inter; ++k) {
          gate_clamped += u(t, 2 * k) > moe.swiglu_limit;
          up_clamped += std::abs(u(t, 2 * k + 1)) > moe.swiglu_limit;
        }
    }
    BOOST_TEST(gate_clamped > 0);
    BOOST_TEST(up_clamped > 0);
    auto f = [&](const matrix<double>& v) { return moe.forward(v); };
    BOOST_TEST(worst_gradient_error(f, x, r, mla::convert::moe_backward(moe, x, r)) <= 1e-6);
  }
}

// A frozen gpt-oss attention layer: 4 query heads on 2 KV heads, biases, sinks, YaRN RoPE and a window of 5
// shorter than the 11 tokens (keys fall out of it), and the same layer without window and sinks (Llama's).
BOOST_AUTO_TEST_CASE(gqa_with_sinks_window_and_groups) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (const int window : {5, 0}) {
      mla::test::layer_spec spec = mla::test::with_gpt_oss_features({}, window);
      spec.hidden = 32;
      spec.sinks = window > 0;
      const auto layer = mla::test::random_gqa<double>(gen, spec);
      const matrix<double> x = mla::test::randn<double>(gen, 11, spec.hidden, 1.0),
                           r = mla::test::randn<double>(gen, 11, spec.hidden, 1.0);
      auto f = [&](const matrix<double>& v) { return mla::ref::gqa_prefill(layer, v); };
      BOOST_TEST(worst_gradient_error(f, x, r, mla::convert::gqa_backward(layer, x, r)) <= 1e-7, "window " << window);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
