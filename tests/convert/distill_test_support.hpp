// What the distillation tests check of a distilled layer, computed outside distill.hpp: the held-out loss of the
// stage (distill_layer_to: the last fifth of its windows, at least one, relative squared attention-output error),
// recomputed from the reference naive prefill, for the layer it started from and the layer it returned.
//
// The stage keeps the best held-out loss and starts from the input layer's, so its report's
// heldout_after <= heldout_before holds by construction. These checks can fail: the report must give the loss of
// the weights actually returned, and those must beat the starting layer by a margin.
#pragma once

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <cstddef>
#include <vector>

#include "mla/convert/distill.hpp"
#include "mla/reference/eigen_types.hpp"
#include "mla/reference/gqa_attention.hpp"
#include "mla/reference/mla_attention.hpp"

namespace mla::test {

// sum_w ||naive_prefill(layer, inputs[w]) - targets[w]||^2 / sum_w ||targets[w]||^2 over the windows the stage holds
// out of `inputs.size()` (its last fifth, at least one); in double.
template <class T>
double distill_heldout_loss(const ref::mla_layer<T>& layer, const std::vector<ref::matrix<T>>& inputs,
                            const std::vector<ref::matrix<T>>& targets) {
  const std::size_t n_val = std::max<std::size_t>(1, inputs.size() / 5);
  double num = 0, den = 0;
  for (std::size_t w = inputs.size() - n_val; w < inputs.size(); ++w) {
    const ref::matrix<double> y = targets[w].template cast<double>();
    num += (ref::mla_prefill_naive(layer, inputs[w]).template cast<double>() - y).squaredNorm();
    den += y.squaredNorm();
  }
  return num / den;
}

// The same with the source layer's outputs as targets (the teacher-forced stage, distill_layer).
template <class T>
double distill_heldout_loss(const ref::gqa_layer<T>& src, const ref::mla_layer<T>& layer,
                            const std::vector<ref::matrix<T>>& windows) {
  std::vector<ref::matrix<T>> targets;
  for (const auto& x : windows) targets.push_back(ref::gqa_prefill(src, x));
  return distill_heldout_loss(layer, windows, targets);
}

// The report gives the recomputed losses of the input layer (`before`) and of the returned one (`after`).
inline void check_distill_report(const convert::distill_report& rep, double before, double after) {
  BOOST_TEST_MESSAGE("held-out loss, recomputed: " << before << " -> " << after << " (report " << rep.heldout_before
                                                   << " -> " << rep.heldout_after << ", best step " << rep.best_step
                                                   << ")");
  BOOST_TEST(rep.heldout_before == before, boost::test_tools::tolerance(1e-3));
  BOOST_TEST(rep.heldout_after == after, boost::test_tools::tolerance(1e-3));
}

// ... and the returned layer has at most `ratio` of the input layer's loss (a step after 0 was kept).
inline void check_distilled(const convert::distill_report& rep, double before, double after, double ratio) {
  check_distill_report(rep, before, after);
  BOOST_TEST(after < ratio * before);
  BOOST_TEST(rep.best_step > 0);
}

}  // namespace mla::test
