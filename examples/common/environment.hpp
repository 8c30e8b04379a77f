// The environment variables the example programs read (the library reads none): where the real o200k
// vocabulary is, for gpt-oss checkpoints without tokenizer.json (mla::model::o200k_vocabulary_path).
//   $MLA_O200K_VOCAB     quicktok's o200k.vocab or a tiktoken rank file
//   $MLA_O200K_TIKTOKEN  a tiktoken rank file (tools/o200k_golden.py)
//   $MLA_CACHE_DIR       the cache of scripts/fetch_o200k.sh (default ~/.cache/mla)
#pragma once

#include <cstdlib>
#include <string>

#include <mla/model/gpt_oss_tokenizer.hpp>

namespace mla_examples {

inline std::string environment(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The o200k vocabulary file the environment points at; empty when there is none.
inline std::string o200k_vocabulary_from_environment() {
  std::string cache = environment("MLA_CACHE_DIR");
  if (cache.empty() && !environment("HOME").empty()) cache = environment("HOME") + "/.cache/mla";
  return mla::model::o200k_vocabulary_path({environment("MLA_O200K_VOCAB"), environment("MLA_O200K_TIKTOKEN"), cache});
}

}  // namespace mla_examples
