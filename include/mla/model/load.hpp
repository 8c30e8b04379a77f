// Opening a model and its tokenizer from what users have: a GGUF file (Llama family) for now; checkpoint
// directories (safetensors + config.json) come with the converted-model format.
#pragma once

#include <filesystem>
#include <string>

#include "mla/core/error.hpp"
#include "mla/io/gguf.hpp"
#include "mla/model/decoder.hpp"
#include "mla/model/load_gguf.hpp"
#include "mla/tokenizer/gguf_vocab.hpp"
#include "mla/tokenizer/tokenizer.hpp"

namespace mla::model {

struct loaded_model {
  decoder<float> model;
  tok::tokenizer tokenizer;
  std::string chat_template;  // empty when the file has none
  std::string source;         // the path it came from
};

inline loaded_model load_model(const std::string& path) {
  namespace fs = std::filesystem;
  check(fs::exists(path), "mla: model path '", path, "' does not exist");
  check(!fs::is_directory(path), "mla: '", path,
        "' is a directory; checkpoint directories are not supported yet, pass a .gguf file");
  const io::gguf_file f = io::gguf_file::open(path);
  model_config c = config_from_gguf(f);
  decoder<float> m(c, weights_from_gguf(f, c));
  tok::tokenizer t = tok::tokenizer_from_gguf(f);
  return {std::move(m), std::move(t), tok::chat_template_from_gguf(f).value_or(""), path};
}

}  // namespace mla::model
