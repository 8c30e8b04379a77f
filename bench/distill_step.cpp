// One end-to-end distillation step (mla-convert --e2e-steps) timed on its own: the student's forward and backward
// through the whole model against the teacher's distributions on a batch of token windows, then the optimiser's
// update of the trained tensors, exactly as distill_model (include/mla/convert/distill_model.hpp) runs it: the
// windows of a batch over the OpenMP threads, each window's products in Eigen. Reports tokens per second.
//
//   mla_distill_step --model SmolLM2-135M-Instruct.Q4_1.gguf --student converted/ --text valid.txt
//       --window 256 --batch 2 --steps 5 --train latent [--dump /tmp/step]      (one line)
//
// --dump writes what tools/distill_step_torch.py needs to run the same step in PyTorch on the same machine: the
// token windows (windows.json), the teacher's distributions (teacher.f32, [batch, window, vocab] float32) and the
// first step's loss and gradient norm (reference.json), which the script checks its own against before timing.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <mla/convert/calibration_text.hpp>
#include <mla/convert/distill_model.hpp>
#include <mla/model/load.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"one end-to-end distillation step of a converted model, timed (tokens/s)"};
  std::string model_path, student_path, text_path, train = "latent", dump;
  int window = 256, batch = 2, steps = 5;
  app.add_option("--model", model_path, "the source model (teacher): GGUF file or checkpoint directory")->required();
  app.add_option("--student", student_path, "the converted checkpoint (mla-convert --out)")->required();
  app.add_option("--text", text_path, "text the token windows come from (its start)")->required();
  app.add_option("--window", window, "tokens per window")->check(CLI::Range(8, 65536));
  app.add_option("--batch", batch, "windows per step")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "timed steps (after one untimed step)")->check(CLI::PositiveNumber);
  app.add_option("--train", train, "trained set: latent or attention (mla-convert --e2e-train)")
      ->check(CLI::IsMember({"latent", "attention"}));
  app.add_option("--dump", dump, "directory (new) for tools/distill_step_torch.py: windows, teacher, reference");
  CLI11_PARSE(app, argc, argv);

  using T = float;
  namespace cv = mla::convert;
  try {
    const auto t_all = clock_type::now();
    const mla::model::loaded_model src = mla::model::load_model(model_path);
    const mla::model::loaded_model stu = mla::model::load_model(student_path);
    mla::check(src.has_tokenizer, "--model: '", model_path, "' has no usable tokenizer (", src.tokenizer_note, ")");
    const mla::model::model_config& cfg = stu.model.config();
    mla::check(cfg.vocab_size == src.model.config().vocab_size && cfg.n_layers == src.model.config().n_layers,
               "--student: '", student_path, "' is not a conversion of '", model_path, "' (vocab or layers differ)");
    const auto ids32 = src.tokenizer.encode(
        cv::read_calibration_text(text_path, std::size_t(64) * std::size_t(window) * std::size_t(batch)));
    mla::check(ids32.size() >= std::size_t(window) * std::size_t(batch), "--text: '", text_path, "' gives ",
               ids32.size(), " tokens, fewer than --window x --batch = ", window * batch);
    std::vector<std::vector<int>> windows(static_cast<std::size_t>(batch));
    for (int b = 0; b < batch; ++b)
      windows[std::size_t(b)].assign(ids32.begin() + long(b) * window, ids32.begin() + long(b + 1) * window);

    cv::distill_options opt;  // what mla-convert's e2e stage passes, for the trained set
    opt.train_query = opt.train_output = train == "attention";
    std::vector<cv::teacher_targets<T>> teacher(windows.size());
    for (std::size_t b = 0; b < windows.size(); ++b) teacher[b] = cv::teacher_targets_of(src.model, windows[b], 1.0, 0);

    mla::model::model_weights<T> cur = stu.model.weights();
    std::vector<cv::distill_gradient<T>> g;
    for (const auto& lw : cur.layers) g.emplace_back(lw.mla, opt.train_query, opt.train_output);
    cv::detail::rms_adam<T> adam;
    long n_trained = 0;
    for (std::size_t l = 0; l < cur.layers.size(); ++l)
      if (cv::detail::is_mla_layer(cfg, l)) {
        cv::detail::train_layer(adam, cur.layers[l].mla, g[l], opt);
        for (const auto& t : cv::detail::trained_tensors(cur.layers[l].mla, opt)) n_trained += long(t.second);
      }
    const long batch_tokens = long(window) * batch;
    // One step as distill_model takes it; returns the batch's loss and the gradient's squared norm.
    auto step = [&](int s, double* grad_sq) {
      std::vector<std::vector<cv::distill_gradient<T>>> part(windows.size());
      std::vector<double> part_loss(windows.size());
      mla::util::for_each_index(windows.size(), [&](std::size_t b) {
        for (const auto& lw : cur.layers) part[b].emplace_back(lw.mla, opt.train_query, opt.train_output);
        part_loss[b] =
            cv::model_distill_loss(cfg, cur, windows[b], teacher[b], 1.0 / double(batch_tokens), &part[b], 1.0);
      });
      double sq = 0;
      for (std::size_t l = 0; l < g.size(); ++l) {
        g[l].set_zero();
        for (const auto& pb : part) g[l].add(pb[l]);
        if (cv::detail::is_mla_layer(cfg, l))
          for (const auto& t : cv::detail::trained_tensors(g[l], opt))
            sq += Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(t.first, t.second)
                      .template cast<double>()
                      .square()
                      .sum();
      }
      adam.step(cv::detail::cosine_rate(opt.learning_rate, s, steps + 1), s);
      if (grad_sq) *grad_sq = sq;
      return std::accumulate(part_loss.begin(), part_loss.end(), 0.0);
    };

    std::printf("model %s, student %s: %d layers, trained set %s (%ld values), %d windows of %d tokens per step\n",
                model_path.c_str(), student_path.c_str(), cfg.n_layers, train.c_str(), n_trained, batch, window);
    double grad_sq = 0;
    const auto t_first = clock_type::now();
    const double loss0 = step(1, &grad_sq);
    std::printf("step 1 (untimed warm-up, %.2f s): loss %.6f nats/token, gradient norm %.6e\n", seconds_since(t_first),
                loss0, std::sqrt(grad_sq));
    if (!dump.empty()) {
      namespace fs = std::filesystem;
      mla::check(!fs::exists(dump), "--dump: '", dump, "' exists; give a new directory");
      fs::create_directories(dump);
      std::ofstream w(fs::path(dump) / "windows.json");
      w << "{\"window\": " << window << ", \"windows\": [";
      for (std::size_t b = 0; b < windows.size(); ++b) {
        w << (b ? ", [" : "[");
        for (std::size_t i = 0; i < windows[b].size(); ++i) w << (i ? ", " : "") << windows[b][i];
        w << "]";
      }
      w << "]}\n";
      std::ofstream p(fs::path(dump) / "teacher.f32", std::ios::binary);
      for (const auto& t : teacher)  // row-major [window, vocab]
        p.write(reinterpret_cast<const char*>(t.dense.data()), std::streamsize(t.dense.size() * sizeof(T)));
      std::ofstream r(fs::path(dump) / "reference.json");
      char line[256];
      std::snprintf(line, sizeof line, "{\"loss\": %.9g, \"grad_norm\": %.9g, \"train\": \"%s\"}\n", loss0,
                    std::sqrt(grad_sq), train.c_str());
      r << line;
      mla::check(w.good() && p.good() && r.good(), "--dump: cannot write into '", dump, "'");
      std::printf("wrote %s (windows.json, teacher.f32, reference.json)\n", dump.c_str());
    }
    std::vector<double> times;
    for (int s = 2; s <= steps + 1; ++s) {
      const auto t0 = clock_type::now();
      const double loss = step(s, nullptr);
      times.push_back(seconds_since(t0));
      std::printf("step %d: %.3f s, loss %.6f\n", s, times.back(), loss);
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    std::printf("median step %.3f s over %d steps = %.1f tokens/s (%ld tokens per step)\n", median, steps,
                double(batch_tokens) / median, batch_tokens);
    std::printf("wall time: %.1f s\n", seconds_since(t_all));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mla_distill_step: %s\n", e.what());
    return 1;
  }
}
