// mla-eval: perplexity of a model on a text file (WikiText-2 protocol: one tokenization, non-overlapping
// windows of --ctx tokens, tail dropped, exp(mean NLL)), with speed, peak memory and KV-cache size.
//
//   mla-eval --model SmolLM2-135M-Instruct.Q4_1.gguf --text wikitext-2-raw-test.txt --ctx 2048
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mla/eval/perplexity.hpp>
#include <mla/model/load.hpp>
#include <mla/util/output_path.hpp>
#include <mla/util/progress_bar.hpp>
#include <mla/util/model_summary.hpp>
#include <mla/util/resources.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../common/cli.hpp"
#include "../common/environment.hpp"

namespace {
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  mla::check(static_cast<bool>(in), "mla-eval: cannot open text file '", path, "'");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Perplexity of a model on a text (non-overlapping windows, tail dropped, exp(mean NLL))"};
  mla_examples::start(app, "mla-eval");
  std::string model_path, text_path, json_path;
  mla::eval::perplexity_options opt;
  app.add_option("--model", model_path, "GGUF file or checkpoint directory")->required();
  app.add_option("--text", text_path, "UTF-8 text file, tokenized once as a whole")->required();
  app.add_option("--ctx,--window", opt.context, "window length in tokens (--window: the same, mla-convert's name)")
      ->check(mla_examples::integer(2, 1 << 20));
  app.add_option("--max-tokens", opt.max_tokens, "score at most this many tokens of the text (0: all)")
      ->check(mla_examples::integer(0));
  app.add_option("--json", json_path, "also write the report as JSON to this file");
  std::string mla_form = "absorbed";
  app.add_option("--mla-form", mla_form,
                 "how MLA layers attend: absorbed (queries moved into the latent space) or naive (per-head keys "
                 "and values rebuilt from the cached latent; same logits, fewer FLOPs in long prefills)")
      ->check(mla_examples::one_of({"absorbed", "naive"}));
  bool log_windows = false;
  app.add_flag("--log-windows", log_windows, "print the running perplexity after every window (stderr)");
  MLA_CLI_PARSE(app, argc, argv);
  const mla::util::run_summary summary("mla-eval", mla::util::threads_for_free_cores());  // last line

  try {
    // A --json that cannot be written fails before the evaluation, not after it.
    if (!json_path.empty()) mla::util::check_can_create("--json", json_path);
    std::fprintf(stderr, "loading %s\n", model_path.c_str());
    mla::model::loaded_model m = mla::model::load_model(model_path, mla_examples::o200k_vocabulary_from_environment());
    m.model.set_mla_form(mla_form == "naive" ? mla::ref::mla_form::naive : mla::ref::mla_form::absorbed);
    mla::check(m.has_tokenizer, "mla-eval: ", model_path, " has no usable tokenizer: ", m.tokenizer_note);
    const auto& c = m.model.config();
    const std::string text = read_file(text_path);
    const auto ids32 = m.tokenizer.encode(text);
    const std::vector<int> ids(ids32.begin(), ids32.end());
    const long usable = opt.max_tokens > 0 ? std::min<long>(opt.max_tokens, long(ids.size())) : long(ids.size());
    mla::util::progress_bar bar("perplexity", double(usable / opt.context * opt.context), "tok");
    const mla::eval::perplexity_result r =
        mla::eval::perplexity(m.model, ids, opt, [&](const mla::eval::perplexity_progress& p) {
          if (log_windows)
            std::fprintf(stderr, "window %ld/%ld running perplexity %.4f (%.1f tok/s)\n", p.windows_done,
                         p.windows_total, p.running_perplexity, p.windows_done * opt.context / p.seconds);
          else
            bar.update(double(p.windows_done) * opt.context);
        });
    bar.finish();

    const double kv_per_token_layer = double(r.kv_bytes_per_window) / opt.context / c.n_layers;
    const double tps = r.tokens_evaluated / r.seconds;
    std::printf("model            %s (%s, %d layers)\n", model_path.c_str(), c.architecture.c_str(), c.n_layers);
    std::printf("attention        %s\n", mla::util::attention_summary(c).c_str());
    std::printf("text             %s (%zu tokens)\n", text_path.c_str(), ids.size());
    std::printf("context          %d tokens, %ld windows\n", opt.context, r.windows);
    std::printf("perplexity       %.4f\n", r.perplexity);
    std::printf("tokens scored    %ld\n", r.tokens_scored);
    std::printf("speed            %.1f tokens/s (%.1f s)\n", tps, r.seconds);
    std::printf("peak memory      %.1f MiB (resident)\n", mla::util::peak_rss_bytes() / 1048576.0);
    std::printf(
        "KV cache         %.0f bytes per token per layer, %.2f MiB in total at %d tokens (as allocated, %zu-byte "
        "elements)\n",
        kv_per_token_layer, r.kv_bytes_per_window / 1048576.0, opt.context, sizeof(float));
    if (!json_path.empty()) {
      nlohmann::json j{{"model", model_path},
                       {"text", text_path},
                       {"ctx", opt.context},
                       {"windows", r.windows},
                       {"perplexity", r.perplexity},
                       {"mean_nll", r.mean_nll},
                       {"tokens_scored", r.tokens_scored},
                       {"tokens_per_second", tps},
                       {"seconds", r.seconds},
                       {"peak_rss_bytes", mla::util::peak_rss_bytes()},
                       {"kv_bytes_per_token_per_layer", kv_per_token_layer},
                       {"kv_bytes_total", r.kv_bytes_per_window},
                       {"mla_form", mla_form}};
      mla::util::write_file("--json", json_path, j.dump(2) + "\n");
    }
    mla::util::check_stdout();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-eval: error: %s\n", e.what());
    return mla::util::exit_failure;
  }
  return mla::util::exit_ok;
}
