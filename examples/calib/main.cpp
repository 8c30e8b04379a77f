// mla-calib: calibration sets cut from a corpus around the model's sliding window (logic in
// include/mla/convert/calibration_set.hpp): calib_swa.jsonl (samples inside one window), calib_full.jsonl
// (across several), calib_mixed.jsonl (both, by diversity), calib_random.jsonl (both, at random: the control), and
// with --student calib_hard.jsonl (the samples the converted model gets most wrong), each chosen by farthest points on
// the model's own hidden states with near-duplicates dropped, in length-bucketed batches; mla-convert --calib reads any
// of them.
//
//   mla-calib --model SmolLM2-135M-Instruct.Q4_1.gguf --corpus wikitext-2-valid-tokenized.txt --out calib
//   mla-calib --model gpt-oss-20b/ --student converted/ --corpus corpus.jsonl --out calib --tokens 20480
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <mla/convert/calibration_set.hpp>
#include <mla/io/atomic_directory.hpp>
#include <mla/model/load.hpp>
#include <mla/util/model_summary.hpp>
#include <mla/util/output_path.hpp>
#include <mla/util/progress_bar.hpp>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "../common/environment.hpp"

namespace {

mla::model::loaded_model load(const std::string& flag, const std::string& path) {
  std::fprintf(stderr, "loading %s\n", path.c_str());
  mla::model::loaded_model m = mla::model::load_model(path, mla_examples::o200k_vocabulary_from_environment());
  mla::check(m.has_tokenizer, flag, ": ", path, " has no usable tokenizer: ", m.tokenizer_note);
  return m;
}

// The smallest sliding window of the model's layers, 0 when none has one.
int sliding_window_of(const mla::model::model_config& c) {
  int w = 0;
  for (const auto& l : c.layers)
    if (l.sliding_window > 0 && (w == 0 || l.sliding_window < w)) w = l.sliding_window;
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Calibration sets from a corpus, cut by length around the sliding window (swa / full / mixed), chosen for "
      "diversity on the model's hidden states, with hard negatives from a converted model (--student)"};
  mla_examples::start(app, "mla-calib");
  using mla_examples::integer;
  using mla_examples::number;
  std::string model_path, student_path, corpus_path, out_dir;
  mla::convert::calibration_set_options opt;
  opt.window = 0;
  app.add_option("--model", model_path, "GGUF file or checkpoint directory (the teacher; its tokenizer)")->required();
  app.add_option("--corpus", corpus_path,
                 "plain text (paragraphs split at blank lines) or .jsonl with a \"text\" field per line")
      ->required();
  app.add_option("--out", out_dir, "output directory (must not exist; written atomically)")->required();
  app.add_option("--student", student_path,
                 "a converted model: also write calib_hard.jsonl, the samples with the highest KL to --model");
  app.add_option("--window", opt.window,
                 "the window W the lengths are cut around: swa [W/4, W], full [2W, 4W] tokens (0: the model's "
                 "sliding window, or 256, mla-convert's default --window, when it has none)")
      ->check(integer(0, 1 << 20));
  app.add_option("--tokens", opt.tokens_per_set,
                 "tokens in each set (mla-convert needs --calib-tokens + "
                 "--heldout-tokens + one --window)")
      ->check(integer(1));
  app.add_option("--candidates", opt.candidate_factor, "candidates embedded per class, in multiples of --tokens")
      ->check(number(1, 1000));
  app.add_option("--duplicate-cosine", opt.duplicate_cosine,
                 "drop a candidate whose cosine to a chosen sample exceeds this (1: keep all)")
      ->check(number(1e-9, 1));
  app.add_option("--embed-layer", opt.embed_layer,
                 "embed samples by the mean residual stream after this layer (-1: the middle layer)")
      ->check(integer(-1, 100000));
  app.add_option("--hard-pool-tokens", opt.hard_pool_tokens,
                 "tokens of random candidates scored for --student (0: twice --tokens)")
      ->check(integer(0));
  app.add_option("--batch-tokens", opt.batch_tokens, "tokens per length-bucketed batch (0: 4 W)")->check(integer(0));
  app.add_option("--seed", opt.seed, "seed of the length draws, pools, batch order");
  bool force = false;
  app.add_flag("--force", force, "remove what an interrupted run left beside --out (<out>.tmp.<pid>)");
  MLA_CLI_PARSE(app, argc, argv);
  const mla::util::run_summary summary("mla-calib", mla::util::threads_for_free_cores());  // last line

  try {
    // Everything that can be checked without the model, before it loads.
    {
      mla::convert::calibration_set_options probe = opt;
      if (probe.window == 0) probe.window = 256;
      probe.validate();
    }
    mla::io::check_new_output_path(out_dir, "--out");
    mla::util::check_can_create("--out", out_dir);
    if (force)
      for (const std::string& gone : mla::util::remove_stale_temporaries("--out", out_dir))
        std::fprintf(stderr, "removed %s\n", gone.c_str());
    mla::util::check_no_stale_temporary("--out", out_dir);
    const std::vector<mla::convert::corpus_paragraph> corpus = mla::convert::read_corpus(corpus_path);

    const mla::model::loaded_model m = load("--model", model_path);
    std::unique_ptr<mla::model::loaded_model> student;
    if (!student_path.empty()) student = std::make_unique<mla::model::loaded_model>(load("--student", student_path));
    if (opt.window == 0) {
      const int w = sliding_window_of(m.model.config());
      opt.window = w > 0 ? w : 256;
      std::fprintf(stderr, "window %d tokens (%s)\n", opt.window,
                   w > 0 ? "the model's sliding window" : "the model has no sliding window: mla-convert's default");
    }
    mla::convert::token_codec codec;
    codec.encode = [&](const std::string& text) {
      const auto ids = m.tokenizer.encode(text);
      return std::vector<int>(ids.begin(), ids.end());
    };
    codec.decode = [&](const std::vector<int>& ids) {
      return m.tokenizer.decode(std::vector<std::int32_t>(ids.begin(), ids.end()));
    };
    std::unique_ptr<mla::util::progress_bar> bar;
    std::string stage;
    const mla::convert::calibration_sets r = mla::convert::build_calibration_sets(
        corpus, codec, m.model, student ? &student->model : nullptr, opt,
        [&](const std::string& s, double done, double total) {
          if (s != stage) {
            if (bar) bar->finish();
            stage = s;
            bar = std::make_unique<mla::util::progress_bar>(s, total, s == "tokenise" ? "par" : "tok");
          }
          bar->update(done);
        });
    if (bar) bar->finish();

    const auto& o = r.options;
    std::printf("corpus           %s (%ld paragraphs, %ld tokens)\n", corpus_path.c_str(), r.paragraphs,
                r.corpus_tokens);
    std::printf("model            %s (%s)\n", model_path.c_str(),
                mla::util::attention_summary(m.model.config()).c_str());
    std::printf("window           %d tokens: swa samples %ld-%d tokens, full %d-%d\n", o.window,
                mla::convert::class_range(mla::convert::length_class::swa, o.window).lo, o.window, 2 * o.window,
                4 * o.window);
    std::printf("candidates       swa %ld (%ld embedded), full %ld (%ld embedded), by layer %d's mean state\n",
                r.candidates[0], r.embedded[0], r.candidates[1], r.embedded[1], o.embed_layer);
    std::printf("\n%-6s %8s %8s %6s %6s %8s %11s %11s %8s %8s\n", "set", "samples", "tokens", "swa", "full", "batches",
                "mean cos", "random cos", "dropped", "mean KL");
    for (const auto& s : r.sets) {
      double kl = 0;
      for (const auto& x : s.samples) kl += x.kl;
      char kl_text[32] = "-";
      if (s.name == "hard") std::snprintf(kl_text, sizeof kl_text, "%.4f", kl / double(s.samples.size()));
      std::printf("%-6s %8zu %8ld %6ld %6ld %8zu %11.4f %11.4f %8ld %8s\n", s.name.c_str(), s.samples.size(),
                  s.tokens(), s.count(mla::convert::length_class::swa), s.count(mla::convert::length_class::full),
                  s.batches.size(), s.mean_cosine, s.random_mean_cosine, s.dropped_duplicates, kl_text);
    }
    mla::convert::save_calibration_sets(out_dir, r);
    std::printf("\nwrote %s: ", out_dir.c_str());
    for (const auto& s : r.sets) std::printf("calib_%s.jsonl ", s.name.c_str());
    std::printf("calib_summary.json\n(mla-convert --calib %s/calib_mixed.jsonl ...)\n", out_dir.c_str());
    mla::util::check_stdout();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-calib: error: %s\n", e.what());
    return mla::util::exit_failure;
  }
  return mla::util::exit_ok;
}
