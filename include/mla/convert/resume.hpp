// mla::convert resume_conversion: a converted checkpoint taken up again as the conversion of its source model.
//
// A 50 % SmolLM2 conversion with layer-wise distillation runs for more than an hour; the end-to-end stage
// (distill_model.hpp) that follows it is the part worth tuning. resume_conversion() rebuilds the
// model_conversion of a checkpoint the pipeline wrote (the project's MLA format, read by model::load_model), so
// that later stages continue from it instead of converting again: a long conversion resumes at a stage boundary.
//
// The checkpoint must come from this source model: same shapes, and every tensor a conversion leaves alone
// (embeddings, norms, MLPs, the attention of layers left GQA) equal to the source's up to bf16 rounding
// (relative error <= 1e-2), so that a checkpoint of another model is refused rather than distilled towards the
// wrong teacher. The report starts with one row, "checkpoint": each layer's teacher-forced attention error on
// the held-out inputs as loaded (0 for layers left GQA), the row the later stages' rows compare with.
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "mla/convert/convert_layer.hpp"
#include "mla/convert/pipeline.hpp"
#include "mla/core/error.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/model_config.hpp"
#include "mla/reference/eigen_types.hpp"

namespace mla::convert {

namespace detail {

// Throws unless `got` is `want` up to bf16 rounding; `what` names the tensor.
template <class A, class B>
void check_unchanged(const std::string& what, const Eigen::MatrixBase<A>& want, const Eigen::MatrixBase<B>& got) {
  const char* who = "mla::convert::resume_conversion";
  check(got.rows() == want.rows() && got.cols() == want.cols(), who, ": checkpoint tensor ", what, " is [", got.rows(),
        ", ", got.cols(), "], the source's is [", want.rows(), ", ", want.cols(), "]");
  if (want.size() == 0) return;
  const double err = ref::relative_error(got, want);
  check(err <= 1e-2, who, ": checkpoint tensor ", what, " differs from the source model's (relative error ", err,
        "; a conversion leaves it unchanged): the checkpoint was not converted from this model");
}

}  // namespace detail

// The conversion of (source_cfg, source) that produced the checkpoint (cfg, w). `heldout` ([n_layers][windows]
// of [tokens, hidden], the source model's normalised attention inputs) fills the "checkpoint" report row.
template <class T>
model_conversion<T> resume_conversion(const model::model_config& source_cfg, const model::model_weights<T>& source,
                                      const model::model_config& cfg, model::model_weights<T> w,
                                      const std::vector<std::vector<ref::matrix<T>>>* heldout = nullptr) {
  const char* who = "mla::convert::resume_conversion";
  source_cfg.validate();
  cfg.validate();
  auto same = [&](const char* field, long src, long ck) {
    check(src == ck, who, ": checkpoint ", field, " is ", ck, ", the source model's is ", src,
          ": the checkpoint was not converted from this model");
  };
  same("n_layers", source_cfg.n_layers, cfg.n_layers);
  same("hidden", source_cfg.hidden, cfg.hidden);
  same("vocab_size", source_cfg.vocab_size, cfg.vocab_size);
  same("n_heads", source_cfg.n_heads, cfg.n_heads);
  same("head_dim", source_cfg.head_dim, cfg.head_dim);
  same("mlp kind", static_cast<long>(source_cfg.mlp), static_cast<long>(cfg.mlp));
  const auto n_layers = static_cast<std::size_t>(cfg.n_layers);
  check(source.layers.size() == n_layers && w.layers.size() == n_layers, who, ": weights for ", source.layers.size(),
        " (source) and ", w.layers.size(), " (checkpoint) layers, the model has ", n_layers);
  check(!heldout || heldout->size() == n_layers, who, ": held-out inputs for ", heldout ? heldout->size() : 0,
        " layers, the model has ", n_layers);

  detail::check_unchanged("embed", source.embed, w.embed);
  // An empty lm_head is tied to the embeddings; mla-convert keeps the source's choice (a DeepSeek-V3 export unties).
  check((source.lm_head.size() == 0) == (w.lm_head.size() == 0), who, ": the ",
        source.lm_head.size() == 0 ? "source model ties lm_head to the embeddings and the checkpoint has its own"
                                   : "source model has its own lm_head and the checkpoint ties it to the embeddings",
        ": it is not a checkpoint mla-convert --out wrote for this model (a DeepSeek-V3 export cannot be resumed)");
  detail::check_unchanged("lm_head", source.lm_head, w.lm_head);
  detail::check_unchanged("final_norm", source.final_norm, w.final_norm);
  model_conversion<T> out;
  out.ranks.assign(n_layers, 0);
  out.distill.resize(n_layers);
  out.report.push_back({"checkpoint", std::vector<double>(n_layers, 0.0)});
  for (std::size_t l = 0; l < n_layers; ++l) {
    const std::string at = "layer " + std::to_string(l) + " ";
    const auto &s = source.layers[l], &c = w.layers[l];
    const auto &sl = source_cfg.layers[l], &cl = cfg.layers[l];
    check(sl.attention == model::attention_kind::gqa, who, ": source ", at, "is not GQA");
    same((at + "sliding_window").c_str(), sl.sliding_window, cl.sliding_window);
    detail::check_unchanged(at + "attn_norm", s.attn_norm, c.attn_norm);
    detail::check_unchanged(at + "mlp_norm", s.mlp_norm, c.mlp_norm);
    if (cfg.mlp == model::mlp_kind::swiglu) {
      detail::check_unchanged(at + "mlp.w_gate", s.mlp.w_gate, c.mlp.w_gate);
      detail::check_unchanged(at + "mlp.w_up", s.mlp.w_up, c.mlp.w_up);
      detail::check_unchanged(at + "mlp.w_down", s.mlp.w_down, c.mlp.w_down);
    }
    if (cl.attention == model::attention_kind::gqa) {
      detail::check_unchanged(at + "wq (left GQA)", s.gqa.wq, c.gqa.wq);
      detail::check_unchanged(at + "wk (left GQA)", s.gqa.wk, c.gqa.wk);
      detail::check_unchanged(at + "wv (left GQA)", s.gqa.wv, c.gqa.wv);
      detail::check_unchanged(at + "wo (left GQA)", s.gqa.wo, c.gqa.wo);
      continue;
    }
    c.mla.validate();
    out.ranks[l] = c.mla.latent_rank;
    if (heldout) out.report.back().per_layer[l] = attention_output_error(s.gqa, c.mla, (*heldout)[l]);
  }
  out.config = cfg;
  out.weights = std::move(w);
  return out;
}

}  // namespace mla::convert
