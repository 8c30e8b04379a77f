// mla-generate: text generation with the instruct model's chat template (or a raw prompt): ChatML for
// SmolLM2, harmony for gpt-oss (which stops at <|return|>, <|end|> or <|call|>).
//
//   mla-generate --model SmolLM2-135M-Instruct.Q4_1.gguf --prompt "What is the capital of France?"
//   mla-generate --model /tmp/gpt-oss-tiny --prompt "What is the capital of France?" --max-new-tokens 8
//   --attention-backend reference|cpu puts every layer's decode attention on the Eigen reference or the CPU
//   kernels (model/attention_backend.hpp).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <algorithm>
#include <mla/model/gpt_oss_tokenizer.hpp>
#include <mla/model/load.hpp>
#include <mla/model/sampling.hpp>
#include <mla/tokenizer/chat_template.hpp>

#include "../common/cli.hpp"
#include "../common/environment.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Generate text with a model (chat template applied unless --raw)"};
  mla_examples::start(app, "mla-generate");
  std::string model_path, prompt, system;
  int max_new = 128;
  bool raw = false;
  unsigned long long seed = 0;
  mla::model::sampling_options so;
  app.add_option("--model", model_path, "GGUF file or checkpoint directory")->required();
  app.add_option("--prompt", prompt, "user message (or raw text with --raw)")->required();
  app.add_option("--system", system, "system prompt (default: the model's own)");
  app.add_flag("--raw", raw, "feed the prompt as is, without the chat template");
  app.add_option("--max-new-tokens,--max-tokens", max_new, "tokens to generate at most (--max-tokens: the same)")
      ->check(mla_examples::integer(1));
  app.add_option("--temperature", so.temperature, "0: greedy")->check(mla_examples::number(0));
  app.add_option("--top-k", so.top_k, "0: off")->check(mla_examples::integer(0));
  app.add_option("--top-p", so.top_p, "1: off")->check(mla_examples::number(0, 1));
  app.add_option("--repetition-penalty", so.repetition_penalty, "1: off")->check(mla_examples::number(1, 10));
  app.add_option("--seed", seed, "sampling seed");
  std::string backend;
  app.add_option("--attention-backend", backend,
                 "decode attention of every layer on the Eigen reference or the CPU kernels (default: MLA layers on "
                 "the CPU kernel, GQA layers on the reference)")
      ->check(mla_examples::one_of({"reference", "cpu"}));
  MLA_CLI_PARSE(app, argc, argv);
  const mla::util::run_summary summary("mla-generate", mla::util::threads_for_free_cores());  // last line

  try {
    mla::model::loaded_model m = mla::model::load_model(model_path, mla_examples::o200k_vocabulary_from_environment());
    if (!backend.empty())
      m.model.set_backends(mla::model::decode_backends::all(mla::model::parse_attention_backend(backend)));
    mla::check(m.has_tokenizer, "mla-generate: ", model_path, " has no usable tokenizer: ", m.tokenizer_note);
    const bool harmony = m.model.config().architecture == "gpt_oss";
    std::string text = prompt;
    if (!raw && harmony) {
      std::vector<mla::tok::chat_message> msgs;
      if (!system.empty()) msgs.push_back({"system", system});
      msgs.push_back({"user", prompt});
      text = mla::tok::render_harmony(msgs);
    } else if (!raw) {
      mla::tok::chatml_options co;
      std::vector<mla::tok::chat_message> msgs;
      if (!system.empty()) msgs.push_back({"system", system});
      msgs.push_back({"user", prompt});
      text = mla::tok::render_chatml(msgs, co);
    }
    const auto ids32 = m.tokenizer.encode(text);
    std::vector<int> ids(ids32.begin(), ids32.end());
    mla::model::sampler pick(so, seed);
    const auto t0 = std::chrono::steady_clock::now();
    auto s = m.model.new_session();
    const mla::ref::matrix<float> first = m.model.forward(s, ids);
    const auto t1 = std::chrono::steady_clock::now();
    std::vector<int> out;
    int next = pick.next(mla::ref::row_vector<float>(first.row(first.rows() - 1)), out);
    std::vector<std::int32_t> stop;
    if (harmony)
      stop = mla::model::harmony_stop_ids(m.tokenizer);
    else if (const auto im_end = m.tokenizer.find("<|im_end|>"))
      stop.push_back(*im_end);
    while (true) {
      if (next == m.model.config().eos_id || std::find(stop.begin(), stop.end(), next) != stop.end()) break;
      out.push_back(next);
      const std::string piece = m.tokenizer.decode(std::vector<std::int32_t>{next});
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      if (static_cast<int>(out.size()) >= max_new) break;
      next = pick.next(m.model.decode(s, next), out);
    }
    const auto t2 = std::chrono::steady_clock::now();
    const double prefill = std::chrono::duration<double>(t1 - t0).count();
    const double decode = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr, "\n[prompt %zu tokens in %.2f s (%.1f tok/s); generated %zu tokens in %.2f s (%.1f tok/s)]\n",
                 ids.size(), prefill, ids.size() / prefill, out.size(), decode, out.size() / decode);
    mla::util::check_stdout();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-generate: error: %s\n", e.what());
    return mla::util::exit_failure;
  }
  return mla::util::exit_ok;
}
