// gpt-oss at full size on the CPU: load a gpt-oss-20b-shaped checkpoint memory-mapped, prefill a prompt,
// decode greedily, decode at long contexts, and report load time, tokens/s, peak resident memory and KV-cache
// bytes. With --compare, a converted checkpoint of the same model (mla-convert's output) runs next, in the
// same process, so that the two decode speeds are a ratio of one run.
//
//   mla-make-gpt-oss --preset 20b --seed 1 --out /tmp/gptoss20b          (~13 GB, outside the repository)
//   mla_gpt_oss_scale --model /tmp/gptoss20b --prompt 128 --decode 32
//   mla_gpt_oss_scale --model /tmp/gptoss20b --compare /tmp/gptoss20b-mla --prompt 32 --decode 4
//       --contexts 8192,32768 --context-decode 4   (one line)
//
// Memory: the non-expert weights (embedding, lm_head, attention, norms, router) are expanded to float
// (~7.2 GB at 20b); the experts (~12 GB of MXFP4) stay in the mapping and one expert at a time is expanded
// (~100 MB). The loader hands the mapped pages back once they are read (load_safetensors.hpp), so the
// resident set stays near the float weights.
//
// Long contexts (--contexts): prefilling 32 K tokens through the reference decoder would take hours on a
// small CPU, so the caches are filled instead: the rows the prompt's prefill left in every layer's cache are
// repeated up to the context length (a sliding-window layer's ring holds its window, its count says the
// context), and decode steps run on top. The cached values are then not those of a real context, so the
// generated ids mean nothing there; the work per step (the attention over every cached row, the MoE) is that
// of a real step at that length.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <mla/io/safetensors.hpp>
#include <mla/model/attention_backend.hpp>
#include <mla/model/decoder.hpp>
#include <mla/model/hf_config.hpp>
#include <mla/model/load_safetensors.hpp>
#include <mla/util/resources.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double gib(std::size_t b) { return double(b) / (1024.0 * 1024.0 * 1024.0); }
double mib(double b) { return b / (1024.0 * 1024.0); }

// Rows [0, n) of m repeated down to `rows` rows.
void tile_rows(mla::ref::matrix<float>& m, long rows) {
  const long n = static_cast<long>(m.rows());
  if (n == 0 || n == rows) return;
  mla::ref::matrix<float> out(rows, m.cols());
  for (long r = 0; r < rows; r += n) {
    const long k = std::min(n, rows - r);
    out.middleRows(r, k) = m.topRows(k);
  }
  m.swap(out);
}

// The session's caches filled to `context` tokens by repeating their rows (see the header).
void fill_to(mla::model::session<float>& s, const mla::model::model_config& c, long context) {
  for (int l = 0; l < c.n_layers; ++l) {
    const auto li = static_cast<std::size_t>(l);
    if (c.layers[li].attention == mla::model::attention_kind::mla) {
      tile_rows(s.mla[li].c, context);
      tile_rows(s.mla[li].k_pe, context);
      continue;
    }
    auto& kv = s.gqa[li];
    const long rows = kv.window > 0 ? std::min(kv.window, context) : context;
    tile_rows(kv.k, rows);
    tile_rows(kv.v, rows);
    if (kv.window > 0) kv.consumed = context;
  }
  s.length = context;
}

struct options {
  int prompt = 128, steps = 32, context_steps = 4;
  std::vector<long> contexts;
  std::uint64_t seed = 7;
  mla::model::attention_backend backend = mla::model::attention_backend::cpu_kernel;
};

// Load, prefill, decode and the long contexts of one checkpoint; returns decode tok/s per context.
std::vector<double> run_model(const std::string& dir, const options& o) {
  namespace fs = std::filesystem;
  const auto t_load = clock_type::now();
  const mla::model::model_config c = mla::model::config_from_hf_file((fs::path(dir) / "config.json").string());
  auto ck = std::make_shared<const mla::io::safetensors_checkpoint>(mla::io::safetensors_checkpoint::open(dir));
  mla::model::decoder<float> m(c, mla::model::weights_from_safetensors(ck, c));
  m.set_backends(mla::model::decode_backends::all(o.backend));
  const double load_s = seconds_since(t_load);
  int n_mla = 0;
  for (const auto& lc : c.layers) n_mla += lc.attention == mla::model::attention_kind::mla ? 1 : 0;
  std::printf("\nmodel: %s: %d layers (%d MLA), hidden %d, %d/%d heads of %d, %d experts top-%d, vocab %d\n",
              dir.c_str(), c.n_layers, n_mla, c.hidden, c.n_heads, c.n_kv_heads, c.head_dim, c.n_experts,
              c.experts_per_token, c.vocab_size);
  std::printf("load: %.2f s (config, mapping, non-expert weights to float); RSS %.2f GiB\n", load_s,
              gib(mla::util::current_rss_bytes()));
  for (const long ctx : {8192L, 32768L, 131072L})
    std::printf("kv cache at %6ld tokens: %8.1f MiB float32, %8.1f MiB bf16\n", ctx,
                mib(4.0 * double(c.kv_elements_at_context(ctx))), mib(2.0 * double(c.kv_elements_at_context(ctx))));

  std::vector<int> tokens(static_cast<std::size_t>(o.prompt));
  std::uint64_t s = o.seed;
  for (int& t : tokens) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int>((s >> 33) % static_cast<std::uint64_t>(c.vocab_size));
  }
  auto session = m.new_session();
  const auto t_prefill = clock_type::now();
  const mla::ref::matrix<float> logits = m.forward(session, tokens);
  const double prefill_s = seconds_since(t_prefill);
  std::printf("prefill: %d tokens in %.2f s = %.2f tok/s; RSS now %.2f GiB\n", o.prompt, prefill_s,
              o.prompt / prefill_s, gib(mla::util::current_rss_bytes()));
  const mla::model::session<float> after_prompt = session;

  Eigen::Index next = 0;
  logits.row(logits.rows() - 1).maxCoeff(&next);
  const int first_next = static_cast<int>(next);
  std::vector<int> generated;
  const auto t_decode = clock_type::now();
  for (int i = 0; i < o.steps; ++i) {
    generated.push_back(static_cast<int>(next));
    m.decode(session, static_cast<int>(next)).maxCoeff(&next);
  }
  const double decode_s = seconds_since(t_decode);
  if (o.steps > 0)
    std::printf("decode after the prompt: %d steps in %.2f s = %.3f tok/s (%.2f s/token)\n", o.steps, decode_s,
                o.steps / decode_s, decode_s / o.steps);
  std::printf("generated ids:");
  for (const int g : generated) std::printf(" %d", g);
  std::printf("\nkv cache after %ld tokens: %.1f MiB as allocated\n", session.length, mib(double(session.kv_bytes())));

  std::vector<double> rates;
  for (const long ctx : o.contexts) {
    auto filled = after_prompt;
    fill_to(filled, c, ctx);
    int tok = first_next;
    const auto t0 = clock_type::now();
    for (int i = 0; i < o.context_steps; ++i) {
      Eigen::Index n = 0;
      m.decode(filled, tok).maxCoeff(&n);
      tok = static_cast<int>(n);
    }
    const double sec = seconds_since(t0);
    rates.push_back(o.context_steps / sec);
    std::printf("decode at %ld tokens of context (cache filled): %d steps in %.2f s = %.3f tok/s; kv cache %.1f MiB\n",
                ctx, o.context_steps, sec, o.context_steps / sec, mib(double(filled.kv_bytes())));
  }
  std::printf("peak RSS so far: %.2f GiB (%zu bytes)\n", gib(mla::util::peak_rss_bytes()), mla::util::peak_rss_bytes());
  return rates;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gpt-oss at full size on the CPU: load, prefill, decode, long contexts, memory"};
  std::string dir, compare;
  options o;
  std::string backend = "cpu";
  app.add_option("--model", dir, "checkpoint directory (config.json + safetensors)")->required();
  app.add_option("--compare", compare, "a converted checkpoint of the same model, run next in the same process");
  app.add_option("--prompt", o.prompt, "prompt tokens (prefilled in one call)")->check(CLI::PositiveNumber);
  app.add_option("--decode", o.steps, "greedy decode steps after the prompt")->check(CLI::NonNegativeNumber);
  app.add_option("--contexts", o.contexts, "context lengths to decode at, the caches filled (comma-separated)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--context-decode", o.context_steps, "decode steps at each context")->check(CLI::PositiveNumber);
  app.add_option("--attention-backend", backend, "decode attention of both kinds: cpu (the kernels) or reference")
      ->check(CLI::IsMember({"cpu", "reference"}));
  app.add_option("--seed", o.seed, "seed of the prompt's token ids");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto t0 = clock_type::now();
    o.backend = mla::model::parse_attention_backend(backend);
    for (const long ctx : o.contexts)
      if (ctx <= o.prompt) throw mla::error("--contexts: " + std::to_string(ctx) + " must exceed --prompt");
    std::printf("decode attention: %s backend for GQA and MLA layers\n", backend.c_str());
    const std::vector<double> a = run_model(dir, o);
    if (!compare.empty()) {
      const std::vector<double> b = run_model(compare, o);
      for (std::size_t i = 0; i < o.contexts.size(); ++i)
        std::printf("decode at %ld tokens: converted / original = %.3f\n", o.contexts[i], b[i] / a[i]);
    }
    std::printf("wall time: %.1f s\n", seconds_since(t0));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla_gpt_oss_scale: %s\n", e.what());
    return 1;
  }
}
