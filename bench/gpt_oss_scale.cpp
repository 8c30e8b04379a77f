// gpt-oss at full size on the CPU: load a gpt-oss-20b-shaped checkpoint memory-mapped, prefill a prompt,
// decode greedily, and report load time, tokens/s, peak resident memory and KV-cache bytes per token.
//
//   mla-make-gpt-oss --preset 20b --seed 1 --out /tmp/gptoss20b          (~13 GB, outside the repository)
//   mla_gpt_oss_scale --model /tmp/gptoss20b --prompt 128 --decode 32
//
// Memory: the non-expert weights (embedding, lm_head, attention, norms, router) are expanded to float
// (~7.2 GB at 20b); the experts (~12 GB of MXFP4) stay in the mapping and one expert at a time is
// expanded (~100 MB). Pages of a read-only file mapping that have been read count in the resident set
// until the kernel reclaims them, so by default the bench hands them back (madvise MADV_DONTNEED;
// they stay in the page cache) after loading, after each layer of the prefill and after each decode
// step. --keep-pages leaves them mapped, to see the difference.
#include <sys/mman.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <mla/io/safetensors.hpp>
#include <mla/model/decoder.hpp>
#include <mla/model/hf_config.hpp>
#include <mla/model/load_safetensors.hpp>
#include <mla/util/resources.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// "VmRSS", "RssAnon", "RssFile" from /proc/self/status, in bytes (0 when absent).
std::size_t proc_status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size() + 1, key + ":") == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  return 0;
}

double gib(std::size_t b) { return double(b) / (1024.0 * 1024.0 * 1024.0); }

// Drops the process's pages of the mapped tensors whose names start with `prefix` (all when empty).
void drop_pages(const mla::io::safetensors_checkpoint& ck, const std::vector<std::string>& names,
                const std::string& prefix) {
  static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  for (const std::string& name : names) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const auto& t = ck.tensor(name);
    if (t.bytes.size == 0) continue;
    const auto begin = reinterpret_cast<std::uintptr_t>(t.bytes.data);
    const std::uintptr_t first = begin & ~(page - 1);
    const std::uintptr_t last = (begin + t.bytes.size + page - 1) & ~(page - 1);
    ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  }
}

struct page_dropper final : mla::model::observer<float> {
  const mla::io::safetensors_checkpoint* ck = nullptr;
  const std::vector<std::string>* names = nullptr;
  void layer_output(int layer, const mla::ref::matrix<float>&) override {
    drop_pages(*ck, *names, "model.layers." + std::to_string(layer) + ".mlp.experts.");
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gpt-oss at full size on the CPU: load, prefill, decode, memory"};
  std::string dir;
  int prompt = 128, steps = 32;
  bool keep_pages = false;
  std::uint64_t seed = 7;
  app.add_option("--model", dir, "checkpoint directory (config.json + safetensors)")->required();
  app.add_option("--prompt", prompt, "prompt tokens (prefilled in one call)")->check(CLI::PositiveNumber);
  app.add_option("--decode", steps, "greedy decode steps")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", seed, "seed of the prompt's token ids");
  app.add_flag("--keep-pages", keep_pages, "do not hand mapped checkpoint pages back after use");
  CLI11_PARSE(app, argc, argv);

  try {
    namespace fs = std::filesystem;
    const auto t_load = clock_type::now();
    const mla::model::model_config c = mla::model::config_from_hf_file((fs::path(dir) / "config.json").string());
    auto ck = std::make_shared<const mla::io::safetensors_checkpoint>(mla::io::safetensors_checkpoint::open(dir));
    const mla::model::decoder<float> m(c, mla::model::weights_from_safetensors(ck, c));
    const double load_s = seconds_since(t_load);
    std::vector<std::string> names;
    names = ck->names();
    const std::size_t rss_loaded = proc_status_kib("VmRSS");
    if (!keep_pages) drop_pages(*ck, names, "");
    std::printf("model: %s: %d layers, hidden %d, %d/%d heads of %d, %d experts top-%d, vocab %d, window %d\n",
                dir.c_str(), c.n_layers, c.hidden, c.n_heads, c.n_kv_heads, c.head_dim, c.n_experts,
                c.experts_per_token, c.vocab_size, c.layers[0].sliding_window);
    std::printf(
        "load: %.2f s (config, mapping, non-expert weights to float); RSS %.2f GiB, after dropping mapped "
        "pages %.2f GiB\n",
        load_s, gib(rss_loaded), gib(proc_status_kib("VmRSS")));

    std::vector<int> tokens(static_cast<std::size_t>(prompt));
    std::uint64_t s = seed;
    for (int& t : tokens) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      t = static_cast<int>((s >> 33) % static_cast<std::uint64_t>(c.vocab_size));
    }
    auto session = m.new_session();
    page_dropper dropper;
    dropper.ck = ck.get(), dropper.names = &names;
    const auto t_prefill = clock_type::now();
    const mla::ref::matrix<float> logits = m.forward(session, tokens, keep_pages ? nullptr : &dropper);
    const double prefill_s = seconds_since(t_prefill);
    std::printf("prefill: %d tokens in %.2f s = %.2f tok/s; RSS now %.2f GiB\n", prompt, prefill_s, prompt / prefill_s,
                gib(proc_status_kib("VmRSS")));

    Eigen::Index next = 0;
    logits.row(logits.rows() - 1).maxCoeff(&next);
    std::vector<int> generated;
    const auto t_decode = clock_type::now();
    for (int i = 0; i < steps; ++i) {
      generated.push_back(static_cast<int>(next));
      const mla::ref::row_vector<float> l = m.decode(session, static_cast<int>(next));
      if (!keep_pages) drop_pages(*ck, names, "");
      l.maxCoeff(&next);
    }
    const double decode_s = seconds_since(t_decode);
    if (steps > 0)
      std::printf("decode: %d steps in %.2f s = %.3f tok/s (%.2f s/token)\n", steps, decode_s, steps / decode_s,
                  decode_s / steps);
    std::printf("generated ids:");
    for (const int g : generated) std::printf(" %d", g);
    std::printf("\n");

    // KV cache as allocated, per layer kind.
    const long len = session.length;
    std::size_t sliding_bytes = 0, full_bytes = 0;
    int n_sliding = 0, n_full = 0;
    for (int l = 0; l < c.n_layers; ++l) {
      const auto& kv = session.gqa[static_cast<std::size_t>(l)];
      const std::size_t b = static_cast<std::size_t>(kv.k.size() + kv.v.size()) * sizeof(float);
      if (c.layers[static_cast<std::size_t>(l)].sliding_window > 0)
        sliding_bytes += b, ++n_sliding;
      else
        full_bytes += b, ++n_full;
    }
    std::printf(
        "kv cache: %ld tokens, %.1f MiB in all = %.0f bytes/token; per layer per token: sliding %.0f B "
        "(%d layers), full %.0f B (%d layers)\n",
        len, double(session.kv_bytes()) / (1024.0 * 1024.0), double(session.kv_bytes()) / double(len),
        n_sliding ? double(sliding_bytes) / n_sliding / double(len) : 0.0, n_sliding,
        n_full ? double(full_bytes) / n_full / double(len) : 0.0, n_full);
    std::printf("peak RSS: %.2f GiB (%zu bytes)%s\n", gib(mla::util::peak_rss_bytes()), mla::util::peak_rss_bytes(),
                keep_pages ? " (mapped pages kept)" : " (mapped pages handed back after use)");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla_gpt_oss_scale: %s\n", e.what());
    return 1;
  }
}
