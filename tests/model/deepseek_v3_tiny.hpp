// The tiny DeepSeek-V3 export of the transformers golden (deepseek_v3_golden_test.cpp,
// tools/transformers_deepseek_v3_golden.py): the converted model of deepseek2_tiny.hpp for a seed (2 MLA layers,
// ranks 24 and 16 padded to 24, own latent norms of eps 1e-6, source softmax scale 1/sqrt(d_n), vocab 260) written
// by save_deepseek_v3 as a Hugging Face directory, with the tokenizer files that mla-convert would copy from a GGUF
// --model (checkpoint_tokenizer_files of the tiny GGUF: tokenizer.json of the byte-level BPE, tokenizer_config.json).
// The same bytes on every CPU, like the GGUF (the export's arithmetic is IEEE double/float casts and sqrt).
//   mla-make-deepseek-v3-tiny <out_dir> [seed]   (tests/model/deepseek_v3_tiny_main.cpp)
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "deepseek2_tiny.hpp"
#include "mla/model/deepseek_v3.hpp"
#include "mla/model/save_checkpoint.hpp"

namespace mla::test {

// Writes the tiny model's DeepSeek-V3 export to `dir` (F32; it must not exist) and returns the in-memory model it
// was exported from. The tiny GGUF is written beside it (`dir`.gguf) for its tokenizer, then removed.
inline deepseek2_tiny write_deepseek_v3_tiny(const std::string& dir, std::uint64_t seed = deepseek2_tiny_seed) {
  const std::string gguf = dir + ".gguf";
  const deepseek2_tiny t = write_deepseek2_tiny(gguf, seed);
  const std::vector<model::checkpoint_file> files = model::checkpoint_tokenizer_files(gguf);
  std::filesystem::remove(gguf);
  model::deepseek_export_options opt;  // latent_norm: the layers' own norms (eps 1e-6, DeepSeek's)
  opt.type = io::dtype::F32;
  model::save_deepseek_v3(dir, t.cfg, t.w, opt, files);
  return t;
}

}  // namespace mla::test
