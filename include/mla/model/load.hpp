// Opening a model and its tokenizer from what users have: a GGUF file (Llama family, or the project's deepseek2
// export: deepseek2_gguf.hpp), or a Hugging Face
// checkpoint directory (config.json + safetensors; gpt_oss or llama) with its tokenizer.json when it
// has a supported one (byte-level BPE, or gpt-oss's o200k form). A gpt-oss directory without tokenizer.json
// gets the real o200k tokenizer when the caller gives the o200k vocabulary (o200k_vocabulary_path() in
// gpt_oss_tokenizer.hpp finds it; the library reads no environment variable). A model
// without a usable tokenizer still loads: has_tokenizer is false and tokenizer_note says why.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "mla/core/error.hpp"
#include "mla/io/gguf.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/deepseek2_gguf.hpp"
#include "mla/model/deepseek_v3.hpp"
#include "mla/model/gpt_oss_tokenizer.hpp"
#include "mla/model/load_gguf.hpp"
#include "mla/model/load_safetensors.hpp"
#include "mla/tokenizer/gguf_vocab.hpp"
#include "mla/tokenizer/quicktok.hpp"
#include "mla/tokenizer/tokenizer.hpp"
#include "mla/util/file_kind.hpp"

namespace mla::model {

struct loaded_model {
  decoder<float> model;
  tok::tokenizer tokenizer;   // empty (default-constructed) when has_tokenizer is false
  std::string chat_template;  // empty when the file has none
  std::string source;         // the path it came from
  bool has_tokenizer = true;
  std::string tokenizer_note;  // why there is no tokenizer (empty when there is one)
};

namespace detail {
// tokenizer_config.json's "chat_template" when it is a string; empty otherwise.
inline std::string hf_chat_template(const std::filesystem::path& dir) {
  std::ifstream in(dir / "tokenizer_config.json", std::ios::binary);
  if (!in) return {};
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return {};
  const auto it = j.find("chat_template");
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
// config.json says model_type "deepseek_v3" (a DeepSeek-V3-layout export, deepseek_v3.hpp).
inline bool is_deepseek_v3_dir(const std::filesystem::path& dir) {
  std::ifstream in(dir / "config.json", std::ios::binary);
  if (!in) return false;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("model_type") && j.at("model_type") == "deepseek_v3";
}
// A gpt-oss directory without tokenizer.json: the real o200k_harmony tokenizer from the o200k vocabulary
// `vocab` (quicktok's o200k.vocab or tiktoken's rank file; empty: none at hand), when the model's vocabulary
// holds its 201088 ids.
inline void gpt_oss_o200k_fallback(loaded_model& out, const std::string& vocab) {
  const int n = out.model.config().vocab_size;
  if (vocab.empty()) {
    out.tokenizer_note += "; no o200k vocabulary found either (run scripts/fetch_o200k.sh or set MLA_O200K_VOCAB)";
  } else if (n < 201088) {
    out.tokenizer_note += "; the o200k vocabulary (" + vocab + ") needs 201088 ids, the model has " + std::to_string(n);
  } else {
    out.tokenizer = tok::tokenizer::from_tiktoken(tok::load_o200k_harmony(vocab));
    out.has_tokenizer = true;
    out.tokenizer_note.clear();
  }
}
}  // namespace detail

// `path`: a .gguf file or a checkpoint directory (Hugging Face llama/gpt_oss, the project's MLA format, or a
// DeepSeek-V3-layout export). `o200k_vocab`: the real o200k vocabulary file for a gpt-oss directory without
// tokenizer.json (o200k_vocabulary_path(); empty: no fallback, the note says so).
inline loaded_model load_model(const std::string& path, const std::string& o200k_vocab = {}) {
  namespace fs = std::filesystem;
  check(fs::exists(path), "mla: model path '", path, "' does not exist");
  if (fs::is_directory(path)) {
    decoder<float> m = detail::is_deepseek_v3_dir(path) ? load_deepseek_v3(path) : load_safetensors(path);
    loaded_model out{std::move(m), tok::tokenizer(), "", path, false, ""};
    const fs::path tj = fs::path(path) / "tokenizer.json";
    if (!fs::exists(tj)) {
      out.tokenizer_note = "no tokenizer.json in '" + path + "'";
    } else {
      // An unsupported tokenizer (e.g. gpt-oss's o200k) leaves the model usable with token ids.
      try {
        out.tokenizer = tok::tokenizer::from_hf_json_file(tj.string());
        out.has_tokenizer = true;
        out.chat_template = detail::hf_chat_template(path);
      } catch (const mla::error& e) {
        out.tokenizer_note = std::string("tokenizer.json is not supported: ") + e.what();
      } catch (const nlohmann::json::exception& e) {
        out.tokenizer_note = std::string("tokenizer.json is not valid: ") + e.what();
      }
    }
    if (!fs::exists(tj) && out.model.config().architecture == "gpt_oss")
      detail::gpt_oss_o200k_fallback(out, o200k_vocab);
    return out;
  }
  util::check_gguf_file("mla: model path", path);  // by content: a safetensors file gets its own message
  const io::gguf_file f = io::gguf_file::open(path);
  decoder<float> m = f.get_or<std::string>("general.architecture", "") == "deepseek2" ? deepseek2_from_gguf(f) : [&] {
    const model_config c = config_from_gguf(f);
    return decoder<float>(c, weights_from_gguf(f, c));
  }();
  tok::tokenizer t = tok::tokenizer_from_gguf(f);
  return {std::move(m), std::move(t), tok::chat_template_from_gguf(f).value_or(""), path, true, ""};
}

}  // namespace mla::model
