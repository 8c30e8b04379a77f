// Locating the real model for tests labelled `model`: they are skipped, and reported as skipped, when it is
// absent (tests/support/resources.hpp).
#pragma once

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <string>

#include "mla/model/gpt_oss_tokenizer.hpp"
#include "resources.hpp"

namespace mla::test {

// The real o200k vocabulary as the tools find it (the library reads no environment): $MLA_O200K_VOCAB,
// $MLA_O200K_TIKTOKEN and the cache of scripts/fetch_o200k.sh ($MLA_CACHE_DIR or ~/.cache/mla); empty if none.
inline std::string o200k_vocabulary_from_environment() {
  std::string cache = env_string("MLA_CACHE_DIR");
  if (cache.empty() && !env_string("HOME").empty()) cache = env_string("HOME") + "/.cache/mla";
  return mla::model::o200k_vocabulary_path({env_string("MLA_O200K_VOCAB"), env_string("MLA_O200K_TIKTOKEN"), cache});
}

}  // namespace mla::test

#define MLA_MODEL_TEST boost::unit_test::label("model") * boost::unit_test::precondition(mla::test::has_smollm2{})
