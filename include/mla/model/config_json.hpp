// Writing config.json: the one place that turns a config object into the file's bytes, used by every writer of
// a checkpoint directory (save_checkpoint and save_deepseek_v3 in an io::atomic_directory, the synthetic gpt-oss
// generator in place). The callers build their own fields (llama_config_json, gpt_oss_model_config_json,
// the DeepSeek-V3 export's, gpt_oss_config_json); the pieces those share are here too. Reading is hf_config.hpp.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "mla/io/atomic_directory.hpp"
#include "mla/io/atomic_file.hpp"
#include "mla/model/mla_config.hpp"
#include "mla/model/model_config.hpp"
#include "mla/reference/rope.hpp"

namespace mla::model {

// The bytes of a config.json: fields in insertion order, indented by 2, one trailing newline.
inline std::string config_json_text(const nlohmann::ordered_json& j) { return j.dump(2) + "\n"; }

// Writes `j` as <dir>/config.json atomically (io::atomic_file).
inline void write_config_json(const std::string& dir, const nlohmann::ordered_json& j) {
  io::write_file_atomically((std::filesystem::path(dir) / "config.json").string(), config_json_text(j));
}
// Writes `j` as config.json into a directory being built.
inline void write_config_json(const io::atomic_directory& dir, const nlohmann::ordered_json& j) {
  dir.write_file("config.json", config_json_text(j));
}

// Hugging Face's llama3 "rope_scaling" object of `r`.
inline nlohmann::ordered_json llama3_rope_scaling_json(const ref::rope_config& r) {
  return {{"rope_type", "llama3"},
          {"factor", r.factor},
          {"low_freq_factor", r.low_freq_factor},
          {"high_freq_factor", r.high_freq_factor},
          {"original_max_position_embeddings", r.original_max_position}};
}

// "bos_token_id" and "eos_token_id" of `c`, each when known.
inline void add_token_ids_json(nlohmann::ordered_json& j, const model_config& c) {
  if (c.bos_id >= 0) j["bos_token_id"] = c.bos_id;
  if (c.eos_id >= 0) j["eos_token_id"] = c.eos_id;
}
// The "mla" object (mla_config.hpp) when a layer is MLA or the softmax scale is explicit.
inline void add_mla_json(nlohmann::ordered_json& j, const model_config& c) {
  if (has_mla_layers(c) || c.softmax_scale > 0) j["mla"] = mla_fields_json(c);
}

}  // namespace mla::model
