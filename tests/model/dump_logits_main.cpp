// mla-dump-logits <model> <ids.json> <out.f32>: the project's logits of one window, for comparing with another
// engine (tools/transformers_deepseek_v3_check.py --window-ids / --compare-logits). <ids.json> holds {"tokens":
// [ids]}; the model (GGUF or checkpoint directory, load_model) runs them in one prefill from an empty cache and
// <out.f32> gets the logits as raw little-endian float32, row-major [tokens, vocab].
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "json_file.hpp"
#include "mla/model/load.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: mla-dump-logits <model> <ids.json> <out.f32>\n");
    return 2;
  }
  try {
    const nlohmann::json j = mla::test::read_json(argv[2]);
    mla::check(j.contains("tokens") && j["tokens"].is_array() && !j["tokens"].empty(), argv[2],
               ": expected {\"tokens\": [ids]} with at least one id");
    const std::vector<int> ids = j["tokens"].get<std::vector<int>>();
    const mla::model::loaded_model m = mla::model::load_model(argv[1]);
    const mla::ref::matrix<float> logits = m.model.forward(ids);  // [tokens, vocab], row-major
    std::ofstream out(argv[3], std::ios::binary);
    out.write(reinterpret_cast<const char*>(logits.data()), std::streamsize(logits.size() * sizeof(float)));
    mla::check(static_cast<bool>(out), "cannot write '", argv[3], "'");
    std::printf("%s: %zu tokens x %ld logits\n", argv[3], ids.size(), long(logits.cols()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla-dump-logits: %s\n", e.what());
    return 1;
  }
  return 0;
}
