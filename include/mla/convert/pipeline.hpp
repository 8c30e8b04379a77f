// mla::convert pipeline: whole-model GQA -> MLA conversion with a global KV budget, and a stage report.
//
// Stages, each measured per layer as the relative error of attention outputs against the source GQA layer
// on held-out inputs (teacher-forced: each layer gets the source model's normalised attention input):
//   exact      stage 0, exact_mla_from_gqa (RoPE on the latent; cache as large as GQA): float ~1e-6
//   rope_split the RoPE plan applied at full latent rank 2*g*d - d_R: only the RoPE cut (and FreqFold) lose
//   factorized rank r_l from the allocation
//   refit      (optional) ridge refit of w_uv on calibration inputs
//   refit_o    (optional, refit_opt.output_projection) ridge refit of o_proj across heads after it
//   latent_norm (optional, latent_norm) DeepSeek's latent RMSNorm (kv_a_layernorm) added by latent_norm.hpp, its
//              weight the constant RMS of the latent on the calibration tokens: what a DeepSeek-V3 export costs
//   distill    (optional) layer-wise distillation through the softmax on calibration inputs (distill.hpp),
//              through the latent norm when it was added (so the export's cost is trained away as far as it goes)
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "mla/convert/attention_moment.hpp"
#include "mla/convert/calibration.hpp"
#include "mla/convert/convert_layer.hpp"
#include "mla/convert/distill.hpp"
#include "mla/convert/factorize.hpp"
#include "mla/convert/latent_norm.hpp"
#include "mla/convert/rank_allocation.hpp"
#include "mla/convert/refit.hpp"
#include "mla/convert/rope_strategy.hpp"
#include "mla/core/error.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/model_config.hpp"
#include "mla/reference/exact_rewrite.hpp"
#include "mla/util/for_each_index.hpp"

namespace mla::convert {

struct pipeline_options {
  convert_options layer;  // rope strategy, factor method; layer.rank is used when kv_budget == 0
  long kv_budget = 0;     // cached elements per token summed over converted layers; 0: layer.rank everywhere
  rank_allocation allocation = rank_allocation::uniform;
  bool require_supported_shape = true;  // ranks (and the head split) must be in mla::supported_shapes
  std::vector<int> layers;              // layers to convert; empty: all (the rest stay GQA)
  bool refit = false;                   // needs calibration inputs
  refit_options refit_opt;
  distill_options distill;   // distill.steps > 0: the distill stage runs (needs calibration inputs)
  bool latent_norm = false;  // add DeepSeek's latent RMSNorm to every converted layer (before distill)
  // Progress callbacks, made from the worker threads one at a time (the layers run in parallel):
  std::function<void(int done, int total)> on_layer;  // after each converted layer, `done` layers finished
  // Finer progress: `phase` ("placing RoPE", then "converting"), `done` layers of that phase (fractional within
  // a layer: after each of its expensive steps) out of `total`.
  std::function<void(const char* phase, double done, int total)> on_step;
};

// Per-layer errors of one stage (NaN-free; layers left GQA report 0).
struct stage_errors {
  std::string stage;
  std::vector<double> per_layer;
};

template <class T>
struct model_conversion {
  model::model_config config;
  model::model_weights<T> weights;
  std::vector<int> ranks;  // [n_layers] latent rank, 0 for layers left GQA
  std::vector<stage_errors> report;
  std::vector<distill_report> distill;  // [n_layers] when the distill stage ran (default for layers left GQA)
  std::vector<dvector> value_offsets;   // [n_layers] centred factorisations' value offsets (empty otherwise)
};

// Converts the model. `heldout` ([n_layers][windows] of [tokens, hidden]) fills the stage report when given;
// `refit_inputs` (same layout, calibration tokens) is needed for the refit and the attention RoPE strategy;
// the distillation reads `distill_inputs` (its own windows, e.g. shorter ones), or `refit_inputs` when null.
template <class T>
model_conversion<T> convert_model(const model::model_config& config, const model::model_weights<T>& weights,
                                  const calibration_stats& stats, const pipeline_options& opt,
                                  const std::vector<std::vector<ref::matrix<T>>>* heldout = nullptr,
                                  const std::vector<std::vector<ref::matrix<T>>>* refit_inputs = nullptr,
                                  const std::vector<std::vector<ref::matrix<T>>>* distill_inputs = nullptr) {
  const char* who = "mla::convert::convert_model";
  config.validate();
  const int n_layers = config.n_layers;
  check(static_cast<int>(stats.layers.size()) == n_layers, who, ": statistics for ", stats.layers.size(),
        " layers, model has ", n_layers);
  const bool distill = opt.distill.steps > 0;
  if (!distill_inputs) distill_inputs = refit_inputs;
  check(!distill || (distill_inputs && static_cast<int>(distill_inputs->size()) == n_layers), who,
        ": distill needs calibration inputs for every layer");
  const bool attention_moment = opt.layer.factor.moment == factor_options::moment_kind::attention;
  check(!attention_moment || opt.layer.factor.method != factor_method::weight_svd, who,
        ": the attention moment does not apply to weight_svd, which factors the weights alone (M = I)");
  const bool need_inputs = opt.refit || opt.layer.rope.strategy == rope_strategy::attention || attention_moment;
  check(!need_inputs || (refit_inputs && static_cast<int>(refit_inputs->size()) == n_layers), who,
        ": the refit, the attention RoPE strategy and the attention moment need calibration inputs for every layer");
  check(!heldout || static_cast<int>(heldout->size()) == n_layers, who, ": held-out inputs for ",
        heldout ? heldout->size() : 0, " layers, model has ", n_layers);
  std::vector<int> todo = opt.layers;
  if (todo.empty())
    for (int l = 0; l < n_layers; ++l) todo.push_back(l);
  for (int l : todo) {
    check(l >= 0 && l < n_layers, who, ": layer ", l, " outside [0, ", n_layers, ")");
    check(config.layers[static_cast<std::size_t>(l)].attention == model::attention_kind::gqa, who, ": layer ", l,
          " is not GQA");
  }
  const int d = config.head_dim, dr = opt.layer.rope.rope_dim;
  const int full = full_latent_rank(config.n_kv_heads, d, dr);

  // The layers are independent here: both loops below run them in parallel (util::for_each_index, one layer
  // per OpenMP thread, Eigen single-threaded inside each); each writes only its own layer's entries.
  // Progress: the fractions of the layers in flight, summed under a lock.
  const int n_todo = static_cast<int>(todo.size());
  std::vector<double> layer_done(todo.size(), 0.0);
  int layers_finished = 0;
  const char* phase = "placing RoPE";
  auto step = [&](std::size_t i, double fraction) {
#if defined(_OPENMP)
#pragma omp critical(mla_convert_model_progress)
#endif
    {
      layer_done[i] = fraction;
      if (opt.on_step) {
        double done = 0;
        for (double x : layer_done) done += x;
        opt.on_step(phase, done, n_todo);
      }
    }
  };

  // Plans and problems first (the allocation needs their spectra).
  if (opt.on_step) opt.on_step(phase, 0, n_todo);
  std::vector<rope_plan> plans(todo.size());
  std::vector<factor_problem> problems(todo.size());
  std::vector<layer_rank_info> info(todo.size());
  util::for_each_index(todo.size(), [&](std::size_t i) {
    const auto l = static_cast<std::size_t>(todo[i]);
    const ref::gqa_layer<T>& src = weights.layers[l].gqa;
    plans[i] = make_rope_plan(src, stats.layers[l], opt.layer.rope, refit_inputs ? &(*refit_inputs)[l] : nullptr);
    step(i, 0.5);
    dmatrix am;
    if (attention_moment) am = attention_averaged_moment(src, (*refit_inputs)[l]);
    problems[i] =
        make_factor_problem(src, plans[i], stats.layers[l], opt.layer.factor, attention_moment ? &am : nullptr);
    info[i].max_rank = full;
    if (opt.allocation == rank_allocation::objective_greedy &&
        opt.layer.factor.method != factor_method::attention_aware) {
      factor_options fo = opt.layer.factor;
      fo.method = factor_method::attention_aware;
      info[i].spectrum =
          make_factor_problem(src, plans[i], stats.layers[l], fo, attention_moment ? &am : nullptr).spectrum;
    } else {
      info[i].spectrum = problems[i].spectrum;
    }
    const double ms = stats.layers[l].residual_mean_square();
    info[i].weight = ms > 0 ? 1.0 / ms : 1.0;
    step(i, 1.0);
  });

  std::vector<int> ranks(todo.size(), opt.layer.rank > 0 ? opt.layer.rank : full);
  rank_budget budget;
  budget.elements_per_token = opt.kv_budget;
  budget.nope_dim = d;
  budget.rope_dim = dr;
  budget.require_supported_shape = opt.require_supported_shape;
  if (opt.kv_budget > 0) {
    ranks = allocate_ranks(info, budget, opt.allocation);
  } else if (opt.require_supported_shape) {
    for (std::size_t i = 0; i < todo.size(); ++i)
      check(is_supported(runtime_shape{d + dr, dr, ranks[i]}), who, ": layer ", todo[i], " shape (", d + dr, ", ", dr,
            ", ", ranks[i], ") is not in mla::supported_shapes");
  }

  model_conversion<T> out;
  out.config = config;
  out.weights = weights;
  out.ranks.assign(static_cast<std::size_t>(n_layers), 0);
  out.value_offsets.assign(static_cast<std::size_t>(n_layers), dvector{});
  std::size_t norm_row = 0;  // the report row of the latent_norm stage
  if (heldout) {
    for (const char* s : {"exact", "rope_split", "factorized"})
      out.report.push_back({s, std::vector<double>(static_cast<std::size_t>(n_layers), 0.0)});
    if (opt.refit) out.report.push_back({"refit", std::vector<double>(static_cast<std::size_t>(n_layers), 0.0)});
    if (opt.refit && opt.refit_opt.output_projection)
      out.report.push_back({"refit_o", std::vector<double>(static_cast<std::size_t>(n_layers), 0.0)});
    if (opt.latent_norm) {
      norm_row = out.report.size();
      out.report.push_back({"latent_norm", std::vector<double>(static_cast<std::size_t>(n_layers), 0.0)});
    }
    if (distill) out.report.push_back({"distill", std::vector<double>(static_cast<std::size_t>(n_layers), 0.0)});
  }
  if (distill) out.distill.resize(static_cast<std::size_t>(n_layers));
  // The steps of a layer, for the progress within it: factorisation, refit, latent norm, distillation.
  const double layer_steps = 1.0 + (opt.refit ? 1 : 0) + (opt.latent_norm ? 1 : 0) + (distill ? 1 : 0);
  phase = "converting";
  std::fill(layer_done.begin(), layer_done.end(), 0.0);
  if (opt.on_step) opt.on_step(phase, 0, n_todo);
  util::for_each_index(todo.size(), [&](std::size_t i) {
    double steps_done = 0;
    auto layer_step = [&] { step(i, ++steps_done / layer_steps); };
    const auto l = static_cast<std::size_t>(todo[i]);
    const ref::gqa_layer<T>& src = weights.layers[l].gqa;
    const factorization factors = solve_factor_problem(problems[i], ranks[i]);
    ref::mla_layer<T> layer = assemble_mla_layer(src, plans[i], factors);
    out.value_offsets[l] = factors.value_offset;
    if (heldout) {
      const auto& xs = (*heldout)[l];
      out.report[0].per_layer[l] = attention_output_error(src, ref::exact_mla_from_gqa(src), xs);
      out.report[1].per_layer[l] =
          attention_output_error(src, assemble_mla_layer(src, plans[i], solve_factor_problem(problems[i], full)), xs);
      out.report[2].per_layer[l] = attention_output_error(src, layer, xs);
    }
    layer_step();
    if (opt.refit) {
      layer = refit_value_projection(src, layer, (*refit_inputs)[l], opt.refit_opt, factors.value_offset);
      if (heldout) out.report[3].per_layer[l] = attention_output_error(src, layer, (*heldout)[l]);
      if (opt.refit_opt.output_projection) {
        layer = refit_output_projection(src, layer, (*refit_inputs)[l], opt.refit_opt);
        if (heldout) out.report[4].per_layer[l] = attention_output_error(src, layer, (*heldout)[l]);
      }
      layer_step();
    }
    if (opt.latent_norm) {
      add_latent_norm(layer, stats.layers[l].augmented_second_moment());
      if (heldout) out.report[norm_row].per_layer[l] = attention_output_error(src, layer, (*heldout)[l]);
      layer_step();
    }
    if (distill) {
      layer = distill_layer(src, layer, (*distill_inputs)[l], opt.distill, &out.distill[l]);
      if (heldout) out.report.back().per_layer[l] = attention_output_error(src, layer, (*heldout)[l]);
      layer_step();
    }
    out.weights.layers[l].mla = std::move(layer);
    out.weights.layers[l].gqa = ref::gqa_layer<T>{};
    model::layer_config& lc = out.config.layers[l];
    lc.attention = model::attention_kind::mla;
    lc.latent_rank = ranks[i];
    lc.rope_dim = dr;
    out.ranks[l] = ranks[i];
#if defined(_OPENMP)
#pragma omp critical(mla_convert_model_progress)
#endif
    if (opt.on_layer) opt.on_layer(++layers_finished, n_todo);
  });
  out.config.validate();
  return out;
}

namespace detail {

// Decoder layer l (weights lw, its attention run as `kind`, MLA in the naive form) on the residual stream x
// [tokens, hidden] of one window at positions 0..: model::layer_forward, the decoder's own step.
template <class T>
void advance_stream(const model::model_config& cfg, int l, model::attention_kind kind,
                    const model::layer_weights<T>& lw, ref::matrix<T>& x) {
  ref::gqa_cache<T> gqa_cache;
  ref::mla_cache<T> mla_cache;
  model::layer_forward(cfg, l, lw, x, [&](const ref::matrix<T>& xn) {
    return model::prefill_attention(kind, lw, xn, gqa_cache, mla_cache, ref::mla_form::naive);
  });
}

// [windows] of [tokens, hidden]: the embeddings of token windows.
template <class T>
std::vector<ref::matrix<T>> embed_windows(const model::model_config& cfg, const ref::matrix<T>& embed,
                                          const std::vector<std::vector<int>>& tokens, const char* who) {
  std::vector<ref::matrix<T>> x(tokens.size());
  for (std::size_t w = 0; w < tokens.size(); ++w)
    x[w] = model::embed(cfg, embed, tokens[w], (std::string(who) + ": window " + std::to_string(w)).c_str());
  return x;
}

// Walks the converted model's residual stream over token windows in layer order. Before each layer runs,
// visit(l, xn, x) gets that layer's normalised attention inputs xn and the residual stream x before it (both
// [windows] of [tokens, hidden], after the earlier layers as they now are) and may replace the layer's weights;
// the stream then goes through it (model::layer_forward, which normalises x again to the same xn).
template <class T, class Visit>
void walk_converted_stream(model_conversion<T>& conv, const std::vector<std::vector<int>>& tokens, const char* who,
                           Visit&& visit) {
  const model::model_config& cfg = conv.config;
  std::vector<ref::matrix<T>> x = embed_windows(cfg, conv.weights.embed, tokens, who);  // [windows] of [tokens, hidden]
  for (int l = 0; l < cfg.n_layers; ++l) {
    const auto li = static_cast<std::size_t>(l);
    const model::layer_weights<T>& lw = conv.weights.layers[li];
    std::vector<ref::matrix<T>> xn(x.size());
    for (std::size_t w = 0; w < x.size(); ++w) xn[w] = ref::rms_norm(x[w], lw.attn_norm, cfg.rms_eps);
    visit(l, static_cast<const std::vector<ref::matrix<T>>&>(xn), static_cast<const std::vector<ref::matrix<T>>&>(x));
    for (std::size_t w = 0; w < x.size(); ++w) advance_stream(cfg, l, cfg.layers[li].attention, lw, x[w]);
  }
}

// Shared checks of the sequential stages: source weights and inputs for every layer, one input per token window.
template <class T>
void check_sequential_inputs(const char* who, const model_conversion<T>& conv, const model::model_weights<T>& source,
                             const std::vector<std::vector<int>>& tokens,
                             const std::vector<std::vector<ref::matrix<T>>>& source_inputs,
                             const std::vector<std::vector<ref::matrix<T>>>* heldout) {
  const int n_layers = conv.config.n_layers;
  check(static_cast<int>(source.layers.size()) == n_layers && static_cast<int>(source_inputs.size()) == n_layers, who,
        ": source weights for ", source.layers.size(), " layers and inputs for ", source_inputs.size(), ", model has ",
        n_layers);
  check(!heldout || static_cast<int>(heldout->size()) == n_layers, who, ": held-out inputs for ",
        heldout ? heldout->size() : 0, " layers, model has ", n_layers);
  for (int l = 0; l < n_layers; ++l)
    check(source_inputs[static_cast<std::size_t>(l)].size() == tokens.size(), who, ": layer ", l, " has ",
          source_inputs[static_cast<std::size_t>(l)].size(), " source input windows, expected ", tokens.size());
}

template <class T>
bool is_converted(const model_conversion<T>& conv, std::size_t l) {
  return conv.config.layers[l].attention == model::attention_kind::mla && conv.ranks[l] > 0;
}

}  // namespace detail

// Sequential distillation, run after convert_model (without its distill stage): the converted layers are
// distilled in layer order, each on the inputs the converted model itself gives it (its earlier layers already
// converted and distilled) and towards the source layer's outputs on the source model's inputs. A layer thereby
// also learns to undo part of the drift of the layers before it, which the teacher-forced stage cannot see.
//   source         the unconverted model's weights (conv's GQA weights of converted layers are gone)
//   tokens         [windows][tokens] calibration token windows, positions from 0
//   source_inputs  [n_layers][windows] the source model's normalised attention inputs on those windows
// Fills conv.distill and appends a "distill" row to conv.report (teacher-forced held-out error, as the other
// stages) when `heldout` is given.
template <class T>
void distill_sequential(const model::model_weights<T>& source, model_conversion<T>& conv,
                        const std::vector<std::vector<int>>& tokens,
                        const std::vector<std::vector<ref::matrix<T>>>& source_inputs, const distill_options& opt,
                        const std::vector<std::vector<ref::matrix<T>>>* heldout = nullptr,
                        const std::function<void(int done, int total)>& on_layer = {}) {
  const char* who = "mla::convert::distill_sequential";
  const int n_layers = conv.config.n_layers;
  detail::check_sequential_inputs(who, conv, source, tokens, source_inputs, heldout);
  int total = 0, done = 0;
  for (int r : conv.ranks) total += r > 0;
  conv.distill.assign(static_cast<std::size_t>(n_layers), distill_report{});
  if (heldout) conv.report.push_back({"distill", std::vector<double>(static_cast<std::size_t>(n_layers), 0.0)});
  detail::walk_converted_stream(
      conv, tokens, who, [&](int l, const std::vector<ref::matrix<T>>& xn, const std::vector<ref::matrix<T>>&) {
        const auto li = static_cast<std::size_t>(l);
        if (!detail::is_converted(conv, li)) return;
        const ref::gqa_layer<T>& src = source.layers[li].gqa;
        std::vector<ref::matrix<T>> targets;
        for (const ref::matrix<T>& xs : source_inputs[li]) targets.push_back(ref::gqa_prefill(src, xs));
        ref::mla_layer<T>& layer = conv.weights.layers[li].mla;
        layer = distill_layer_to(layer, xn, targets, opt, &conv.distill[li]);
        if (heldout) conv.report.back().per_layer[li] = attention_output_error(src, layer, (*heldout)[li]);
        if (on_layer) on_layer(++done, total);
      });
}

// Sequential refit, run after convert_model (without its refit stage; a latent norm already added is fitted
// through, a distillation should come after it): the closed-form refits of refit.hpp in layer order, each
// layer's regressors computed on the converted model's own inputs (its earlier layers already converted and
// refitted) and its targets the source layer on the source model's inputs, so the least-squares fit also
// corrects the part of the earlier layers' drift that a linear map of this layer's attention averages can. With
// opt.drift_weight (and the o_proj refit) the o_proj target also carries that weight times the residual-stream
// drift before the layer (the source stream, walked beside, minus the converted one): the layer is then asked to
// cancel the earlier layers' drift as well as to reproduce its own output. Same arguments as distill_sequential;
// only the first opt.max_windows windows are used when it is set. Appends "refit" (and "refit_o") rows to conv.report
// (teacher-forced held-out error, comparable with the other stages) when `heldout` is given.
template <class T>
void refit_sequential(const model::model_weights<T>& source, model_conversion<T>& conv,
                      const std::vector<std::vector<int>>& tokens,
                      const std::vector<std::vector<ref::matrix<T>>>& source_inputs, const refit_options& opt,
                      const std::vector<std::vector<ref::matrix<T>>>* heldout = nullptr,
                      const std::function<void(int done, int total)>& on_layer = {}) {
  const char* who = "mla::convert::refit_sequential";
  const int n_layers = conv.config.n_layers;
  detail::check_sequential_inputs(who, conv, source, tokens, source_inputs, heldout);
  // Only the windows the refit reads go through the stream.
  const std::size_t nw = opt.max_windows > 0 ? std::min(tokens.size(), std::size_t(opt.max_windows)) : tokens.size();
  const std::vector<std::vector<int>> used(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(nw));
  refit_options one = opt;
  one.max_windows = 0;
  int total = 0, done = 0;
  for (int r : conv.ranks) total += r > 0;
  const std::size_t row = conv.report.size();
  if (heldout) {
    conv.report.push_back({"refit", std::vector<double>(static_cast<std::size_t>(n_layers), 0.0)});
    if (opt.output_projection)
      conv.report.push_back({"refit_o", std::vector<double>(static_cast<std::size_t>(n_layers), 0.0)});
  }
  // With drift_weight: the source model's residual stream on the same windows, walked beside the converted one.
  const bool drift = opt.output_projection && opt.drift_weight != 0;
  std::vector<ref::matrix<T>> x_src;
  if (drift) x_src = detail::embed_windows(conv.config, source.embed, used, who);
  detail::walk_converted_stream(
      conv, used, who, [&](int l, const std::vector<ref::matrix<T>>& xn, const std::vector<ref::matrix<T>>& x) {
        const auto li = static_cast<std::size_t>(l);
        const bool converted = detail::is_converted(conv, li);
        const ref::gqa_layer<T>& src = source.layers[li].gqa;
        std::vector<ref::matrix<T>> shift;  // [windows] of [tokens, hidden]: drift_weight * (source - own) stream
        if (drift) {
          for (std::size_t w = 0; w < nw; ++w) shift.push_back(T(opt.drift_weight) * (x_src[w] - x[w]));
          const model::attention_kind kind = converted ? model::attention_kind::gqa : conv.config.layers[li].attention;
          for (std::size_t w = 0; w < nw; ++w)
            detail::advance_stream(conv.config, l, kind, source.layers[li], x_src[w]);
        }
        if (!converted) return;
        const std::vector<ref::matrix<T>> xs(source_inputs[li].begin(),
                                             source_inputs[li].begin() + static_cast<std::ptrdiff_t>(nw));
        ref::mla_layer<T>& layer = conv.weights.layers[li].mla;
        const dvector offset = li < conv.value_offsets.size() ? conv.value_offsets[li] : dvector{};
        layer = refit_value_projection(src, layer, xs, one, offset, &xn);
        if (heldout) conv.report[row].per_layer[li] = attention_output_error(src, layer, (*heldout)[li]);
        if (opt.output_projection) {
          layer = refit_output_projection(src, layer, xs, one, &xn, drift ? &shift : nullptr);
          if (heldout) conv.report[row + 1].per_layer[li] = attention_output_error(src, layer, (*heldout)[li]);
        }
        if (on_layer) on_layer(++done, total);
      });
}

}  // namespace mla::convert
