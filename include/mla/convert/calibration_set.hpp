// mla::convert calibration sets (the audit's data pipeline; the tool is mla-calib): samples cut from a corpus by
// length around a sliding window W, chosen for diversity on the model's own hidden states with near-duplicates
// dropped, hard negatives mined with a converted model, and written as length-bucketed batches of JSON Lines
// that mla-convert --calib reads (one "text" per line; it joins the texts, tokenises them and cuts windows).
//
//   read_corpus(path)           paragraphs: plain text split at blank lines, or each .jsonl/.ndjson record's
//                               "text" split the same way (a record is a document: no sample spans two)
//   cut_samples                 passages of consecutive paragraphs of one document whose token counts lie in a
//                               length class (a paragraph longer than the class is cut after a sentence, or
//                               else at a word start):
//                                 swa   [max(8, W/4), W]   inside one sliding window
//                                 full  [2W, 4W]           across several windows
//   sample_embedding            the model's residual stream after layer L [tokens, hidden], each token's row
//                               scaled to unit RMS (a few huge channels would otherwise decide every cosine),
//                               averaged over the tokens but the first (the attention-sink token); the audit used
//                               an outside embedding model, none is reachable here
//   farthest_point_selection    greedy k-centre in cosine distance 1 - cos: each pick is the candidate farthest
//                               from the samples picked so far; candidates with cos > duplicate_cosine to a pick
//                               are dropped; until the picks hold the token budget
//   sample_kl                   a sample's mean KL(teacher || student) over its next-token distributions
//   bucketed_batches            batches of one length bucket (floor(log2 tokens)) holding at most batch_tokens,
//                               in a seeded random order (so that no stretch of the file is one length)
//   build_calibration_sets      all of it: swa, full, mixed (farthest points over both pools), random (both
//                               pools in random order: the control) and, given a student, hard (the
//                               highest-KL samples of a random pool of both classes); the
//                               embeddings are centred on the pools' mean before the cosines (LLM hidden states
//                               share one large common direction)
//   save_calibration_sets(dir)  calib_swa.jsonl, calib_full.jsonl, calib_mixed.jsonl, calib_random.jsonl
//                               [, calib_hard.jsonl] and
//                               calib_summary.json, as one atomic directory
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "mla/convert/calibration_text.hpp"
#include "mla/core/error.hpp"
#include "mla/eval/next_token_kl.hpp"
#include "mla/io/atomic_directory.hpp"
#include "mla/model/decoder.hpp"
#include "mla/util/for_each_index.hpp"

namespace mla::convert {

struct corpus_paragraph {
  std::string text;
  std::size_t document = 0;  // which record (JSONL) it came from; 0 for plain text
};

namespace detail {
inline std::string trim_space(const std::string& s) {
  const std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Appends the paragraphs of `text` (split at lines that hold only white space; lines of a paragraph joined by
// "\n", CR dropped, each paragraph trimmed) to `out`.
inline void split_paragraphs(const std::string& text, std::size_t document, std::vector<corpus_paragraph>& out) {
  std::string para;
  auto flush = [&] {
    std::string t = trim_space(para);
    if (!t.empty()) out.push_back({std::move(t), document});
    para.clear();
  };
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos)
      flush();
    else
      para += (para.empty() ? "" : "\n") + line;
    pos = end + 1;
  }
  flush();
}
}  // namespace detail

// The corpus as paragraphs (header comment); errors name the file.
inline std::vector<corpus_paragraph> read_corpus(const std::string& path) {
  std::vector<corpus_paragraph> out;
  if (is_jsonl_path(path)) {
    std::size_t doc = 0;
    for_each_jsonl_text(path, [&](const std::string& text) {
      detail::split_paragraphs(text, doc++, out);
      return true;
    });
  } else {
    std::ifstream in(path, std::ios::binary);
    check(static_cast<bool>(in), "--corpus: cannot open '", path, "'");
    std::ostringstream s;
    s << in.rdbuf();
    detail::split_paragraphs(s.str(), 0, out);
  }
  check(!out.empty(), "--corpus: '", path, "' holds no text");
  return out;
}

enum class length_class { swa, full };

inline const char* length_class_name(length_class c) { return c == length_class::swa ? "swa" : "full"; }

struct token_range {
  long lo = 0, hi = 0;  // inclusive
  bool contains(long n) const { return n >= lo && n <= hi; }
};

inline token_range class_range(length_class c, int window) {
  if (c == length_class::swa) return {std::max(8L, long(window) / 4), long(window)};
  return {2L * window, 4L * window};
}

// The model's tokenizer as two functions (the library's tokenizers, or a test's).
struct token_codec {
  std::function<std::vector<int>(const std::string&)> encode;
  std::function<std::string(const std::vector<int>&)> decode;
};

struct calibration_sample {
  std::string text;
  std::vector<int> tokens;  // [n] the text's tokens (encode(text)); n lies in the class's range
  length_class cls = length_class::swa;
  std::size_t first_paragraph = 0;  // where it starts in the corpus
  double kl = -1;                   // hard negatives: mean KL(teacher || student) per token; -1: not scored
};

// The samples of one length class, in corpus order (header comment). paragraph_tokens[i] = encode(paragraph i).
// Samples are drawn at target lengths uniform in the class's range (seeded by gen); a passage that would pass
// the range's top is closed before the paragraph that overflows it, one that stays below its bottom is dropped,
// and each sample's own tokenisation (encode(text)) must land in the range.
inline std::vector<calibration_sample> cut_samples(const std::vector<corpus_paragraph>& paragraphs,
                                                   const std::vector<std::vector<int>>& paragraph_tokens,
                                                   const token_codec& codec, length_class cls, int window,
                                                   std::mt19937_64& gen) {
  check(paragraphs.size() == paragraph_tokens.size(), "cut_samples: ", paragraphs.size(), " paragraphs but ",
        paragraph_tokens.size(), " token lists");
  const token_range r = class_range(cls, window);
  std::uniform_int_distribution<long> length(r.lo, r.hi);
  std::unordered_map<int, bool> starts_word, ends_sentence;
  auto word_start = [&](int id) {
    const auto it = starts_word.find(id);
    if (it != starts_word.end()) return it->second;
    const std::string s = codec.decode({id});
    return starts_word[id] = !s.empty() && (s[0] == ' ' || s[0] == '\n' || s[0] == '\t');
  };
  auto sentence_end = [&](int id) {  // the token ends a sentence or a line: ". ", "!", "?", "\n"
    const auto it = ends_sentence.find(id);
    if (it != ends_sentence.end()) return it->second;
    std::string s = codec.decode({id});
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
    return ends_sentence[id] =
               !s.empty() && (s.back() == '.' || s.back() == '!' || s.back() == '?' || s.back() == '\n');
  };
  std::vector<calibration_sample> out;
  std::string text;
  long n = 0;  // tokens in `text`, counted per piece
  std::size_t first = 0;
  long target = length(gen);
  auto emit = [&] {
    if (n >= r.lo) {
      calibration_sample s;
      s.tokens = codec.encode(text);
      if (r.contains(long(s.tokens.size()))) {
        s.text = text, s.cls = cls, s.first_paragraph = first;
        out.push_back(std::move(s));
      }
    }
    text.clear(), n = 0, target = length(gen);
  };
  auto append = [&](const std::string& piece, long count, std::size_t p) {
    if (piece.empty() || count == 0) return;
    if (n > 0 && n + count > r.hi) emit();
    if (n == 0) first = p;
    text += (text.empty() ? "" : "\n") + piece;
    n += count;
    if (n >= target) emit();
  };
  for (std::size_t p = 0; p < paragraphs.size(); ++p) {
    if (p > 0 && paragraphs[p].document != paragraphs[p - 1].document) emit();
    const std::vector<int>& t = paragraph_tokens[p];
    const long len = long(t.size());
    long pos = 0;
    while (len - pos > r.hi) {       // longer than the class: a piece of a drawn length, cut at the nearest end of a
      long cut = pos + length(gen);  // sentence before it (else after it) within the range, or else at a word start
      auto nearest = [&](auto at_boundary) -> long {
        for (long c = cut; c >= pos + r.lo; --c)
          if (at_boundary(c)) return c;
        for (long c = cut + 1; c <= pos + r.hi; ++c)
          if (at_boundary(c)) return c;
        return -1;
      };
      long at = nearest([&](long c) { return sentence_end(t[std::size_t(c - 1)]); });
      if (at < 0) at = nearest([&](long c) { return word_start(t[std::size_t(c)]); });
      if (at >= 0) cut = at;
      append(detail::trim_space(codec.decode(std::vector<int>(t.begin() + pos, t.begin() + cut))), cut - pos, p);
      pos = cut;
    }
    if (pos == 0)
      append(paragraphs[p].text, len, p);
    else
      append(detail::trim_space(codec.decode(std::vector<int>(t.begin() + pos, t.end()))), len - pos, p);
  }
  emit();
  return out;
}

// The sample's embedding (header comment): [hidden], unit length.
template <class T>
Eigen::VectorXd sample_embedding(const model::decoder<T>& m, const std::vector<int>& tokens, int layer) {
  check(layer >= 0 && layer < m.config().n_layers, "sample_embedding: layer ", layer, " is outside [0, ",
        m.config().n_layers, ")");
  check(!tokens.empty(), "sample_embedding: empty sample");
  model::session<T> s = m.new_session();
  ref::matrix<T> x = m.embed(tokens);  // [n, hidden]
  for (int l = 0; l <= layer; ++l) m.layer_forward(l, x, s);
  const Eigen::MatrixXd h = x.template cast<double>();
  const Eigen::Index skip = h.rows() > 1 ? 1 : 0;
  Eigen::VectorXd e = Eigen::VectorXd::Zero(h.cols());
  for (Eigen::Index t = skip; t < h.rows(); ++t) {
    const double rms = std::sqrt(h.row(t).squaredNorm() / double(h.cols()));
    if (rms > 0) e += h.row(t).transpose() / rms;
  }
  const double norm = e.norm();
  check(std::isfinite(norm) && norm > 0, "sample_embedding: the hidden states of a ", tokens.size(),
        "-token sample average to ", norm == 0 ? "zero" : "a non-finite vector");
  return e / norm;
}

// Greedy farthest-point selection (header comment) over unit vectors e [n]; cost[i]: sample i's tokens. Returns
// the picks in order, `first` first. dropped (when given) counts the candidates dropped as near-duplicates.
inline std::vector<std::size_t> farthest_point_selection(const std::vector<Eigen::VectorXd>& e,
                                                         const std::vector<long>& cost, long budget,
                                                         double duplicate_cosine, std::size_t first,
                                                         long* dropped = nullptr) {
  const std::size_t n = e.size();
  check(cost.size() == n, "farthest_point_selection: ", n, " embeddings but ", cost.size(), " costs");
  check(first < n, "farthest_point_selection: first pick ", first, " of ", n, " candidates");
  std::vector<double> nearest(n, std::numeric_limits<double>::infinity());  // distance to the nearest pick
  std::vector<char> alive(n, 1);
  std::vector<std::size_t> picks;
  long total = 0, gone = 0;
  std::size_t next = first;
  for (;;) {
    picks.push_back(next);
    alive[next] = 0;
    total += cost[next];
    if (total >= budget) break;
    std::size_t best = n;
    for (std::size_t i = 0; i < n; ++i) {
      if (!alive[i]) continue;
      nearest[i] = std::min(nearest[i], 1.0 - e[i].dot(e[next]));
      if (1.0 - nearest[i] > duplicate_cosine) {
        alive[i] = 0, ++gone;
        continue;
      }
      if (best == n || nearest[i] > nearest[best]) best = i;
    }
    if (best == n) break;
    next = best;
  }
  if (dropped) *dropped = gone;
  return picks;
}

// Mean cosine over the pairs of `picks` (1 for fewer than two).
inline double mean_pairwise_cosine(const std::vector<Eigen::VectorXd>& e, const std::vector<std::size_t>& picks) {
  if (picks.size() < 2) return 1;
  double sum = 0;
  long pairs = 0;
  for (std::size_t a = 0; a < picks.size(); ++a)
    for (std::size_t b = a + 1; b < picks.size(); ++b) sum += e[picks[a]].dot(e[picks[b]]), ++pairs;
  return sum / double(pairs);
}

// Mean KL(teacher || student) per position of the sample's next-token distributions.
template <class T>
double sample_kl(const model::decoder<T>& teacher, const model::decoder<T>& student, const std::vector<int>& tokens) {
  const ref::matrix<T> zt = teacher.forward(tokens), zs = student.forward(tokens);  // [n, vocab]
  double sum = 0;
  for (Eigen::Index t = 0; t < zt.rows(); ++t) sum += eval::next_token_kl(zt.row(t), zs.row(t));
  return sum / double(zt.rows());
}

struct calibration_batch {
  int bucket = 0;                    // floor(log2 tokens) of its samples
  std::vector<std::size_t> samples;  // indices into the set's samples
  long tokens = 0;
};

inline int length_bucket(std::size_t tokens) {
  int b = 0;
  while ((std::size_t(2) << b) <= tokens) ++b;
  return b;
}

// Batches of one length bucket each, at most batch_tokens (a longer sample is a batch alone), in a seeded
// random order; samples keep their set order inside a batch.
inline std::vector<calibration_batch> bucketed_batches(const std::vector<calibration_sample>& samples,
                                                       long batch_tokens, std::mt19937_64& gen) {
  std::vector<calibration_batch> out;
  std::unordered_map<int, std::size_t> open;  // bucket -> index of its open batch in out
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const long n = long(samples[i].tokens.size());
    const int b = length_bucket(samples[i].tokens.size());
    const auto it = open.find(b);
    if (it == open.end() || out[it->second].tokens + n > batch_tokens) {
      out.push_back({b, {}, 0});
      open[b] = out.size() - 1;
    }
    calibration_batch& batch = out[open[b]];
    batch.samples.push_back(i);
    batch.tokens += n;
  }
  std::shuffle(out.begin(), out.end(), gen);
  return out;
}

struct calibration_set_options {
  int window = 256;             // W, tokens (the model's sliding window where it has one)
  long tokens_per_set = 10240;  // each set holds at least this many tokens
  double candidate_factor = 2;  // candidates embedded per class: this many times tokens_per_set
  double duplicate_cosine = 0.98;
  int embed_layer = -1;       // the residual stream after this layer; -1: n_layers / 2
  long hard_pool_tokens = 0;  // candidates scored for hard negatives; 0: 2 * tokens_per_set
  long batch_tokens = 0;      // 0: 4 * window
  std::uint64_t seed = 1;

  void validate() const {
    check(window >= 8, "--window must be >= 8 tokens, found ", window);
    check(window <= (1 << 20), "--window must be <= ", 1 << 20, " tokens, found ", window);
    check(tokens_per_set > 0, "--tokens must be > 0, found ", tokens_per_set);
    check(candidate_factor >= 1, "--candidates must be >= 1 (times --tokens), found ", candidate_factor);
    check(duplicate_cosine > 0 && duplicate_cosine <= 1, "--duplicate-cosine must be in (0, 1], found ",
          duplicate_cosine);
    check(hard_pool_tokens >= 0, "--hard-pool-tokens must be >= 0, found ", hard_pool_tokens);
    check(batch_tokens >= 0, "--batch-tokens must be >= 0, found ", batch_tokens);
  }
};

struct calibration_set {
  std::string name;  // swa, full, mixed, random, hard
  std::vector<calibration_sample> samples;
  std::vector<calibration_batch> batches;
  double mean_cosine = 0;         // mean pairwise cosine of the picks' (centred) embeddings: lower is more diverse
  double random_mean_cosine = 0;  // the same for as many random samples of the same pool
  long dropped_duplicates = 0;

  long tokens() const {
    long n = 0;
    for (const auto& s : samples) n += long(s.tokens.size());
    return n;
  }
  long count(length_class c) const {
    return long(std::count_if(samples.begin(), samples.end(), [&](const auto& s) { return s.cls == c; }));
  }
};

struct calibration_sets {
  calibration_set_options options;  // as run (window, embed_layer and the pool sizes resolved)
  long paragraphs = 0;
  long corpus_tokens = 0;
  long candidates[2] = {0, 0};  // samples cut per class (swa, full)
  long embedded[2] = {0, 0};    // of which embedded
  std::vector<calibration_set> sets;
};

// What the builder reports while it works: stage ("tokenise", "embed", "score"), units done, units in all.
using calibration_set_progress = std::function<void(const std::string& stage, double done, double total)>;

// Builds the sets (header comment). student: a converted model for the hard negatives (nullptr: none).
template <class T>
calibration_sets build_calibration_sets(const std::vector<corpus_paragraph>& corpus, const token_codec& codec,
                                        const model::decoder<T>& model,
                                        const typename model::detail::non_deduced<model::decoder<T>>::type* student,
                                        calibration_set_options opt, const calibration_set_progress& progress = {}) {
  opt.validate();
  const int n_layers = model.config().n_layers;
  if (opt.embed_layer < 0) opt.embed_layer = n_layers / 2;
  check(opt.embed_layer < n_layers, "--embed-layer ", opt.embed_layer, " is outside the model's ", n_layers, " layers");
  if (opt.hard_pool_tokens == 0) opt.hard_pool_tokens = 2 * opt.tokens_per_set;
  if (opt.batch_tokens == 0) opt.batch_tokens = 4L * opt.window;
  if (student)
    check(student->config().vocab_size == model.config().vocab_size, "--student: its vocabulary has ",
          student->config().vocab_size, " tokens, the model's ", model.config().vocab_size);
  auto report = [&](const char* stage, double done, double total) {
    if (progress) progress(stage, done, total);
  };

  calibration_sets out;
  out.options = opt;
  out.paragraphs = long(corpus.size());
  std::vector<std::vector<int>> ptok(corpus.size());
  for (std::size_t p = 0; p < corpus.size(); ++p) {
    ptok[p] = codec.encode(corpus[p].text);
    out.corpus_tokens += long(ptok[p].size());
    if (p % 256 == 0 || p + 1 == corpus.size()) report("tokenise", double(p + 1), double(corpus.size()));
  }

  // Each class's candidates in a seeded random order; the pool is the prefix holding candidate_factor * budget.
  std::mt19937_64 gen(opt.seed);
  std::vector<calibration_sample> pool;
  std::vector<std::size_t> class_of_pool[2];
  const long want = static_cast<long>(std::ceil(opt.candidate_factor * double(opt.tokens_per_set)));
  for (const length_class c : {length_class::swa, length_class::full}) {
    std::vector<calibration_sample> cands = cut_samples(corpus, ptok, codec, c, opt.window, gen);
    const int ci = int(c);
    out.candidates[ci] = long(cands.size());
    long all = 0;
    for (const auto& s : cands) all += long(s.tokens.size());
    const token_range r = class_range(c, opt.window);
    check(all >= opt.tokens_per_set, "--corpus: its ", length_class_name(c), " samples (", r.lo, " to ", r.hi,
          " tokens, from --window ", opt.window, ") hold ", all, " tokens, fewer than --tokens ", opt.tokens_per_set,
          "; give a larger corpus or fewer --tokens");
    std::shuffle(cands.begin(), cands.end(), gen);
    long held = 0;
    for (auto& s : cands) {
      if (held >= want) break;
      held += long(s.tokens.size());
      class_of_pool[ci].push_back(pool.size());
      pool.push_back(std::move(s));
    }
    out.embedded[ci] = long(class_of_pool[ci].size());
  }

  // Embeddings [pool] (one sample per thread), centred on their mean and rescaled to unit length.
  std::vector<Eigen::VectorXd> emb(pool.size());
  double total_tokens = 0, done_tokens = 0;
  for (const auto& s : pool) total_tokens += double(s.tokens.size());
  report("embed", 0, total_tokens);  // the stage starts (a progress bar's clock starts here, not at its first sample)
  util::for_each_index(pool.size(), [&](std::size_t i) {
    emb[i] = sample_embedding(model, pool[i].tokens, opt.embed_layer);
#if defined(_OPENMP)
#pragma omp critical(mla_calibration_set_progress)
#endif
    {
      done_tokens += double(pool[i].tokens.size());
      report("embed", done_tokens, total_tokens);
    }
  });
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(emb.front().size());
  for (const auto& e : emb) mean += e;
  mean /= double(emb.size());
  for (auto& e : emb) {
    e -= mean;
    const double nrm = e.norm();
    if (nrm > 0) e /= nrm;
  }

  std::vector<long> cost(pool.size());
  for (std::size_t i = 0; i < pool.size(); ++i) cost[i] = long(pool[i].tokens.size());
  // Farthest points over a subset of the pool (indices into it); the first pick is the candidate nearest the
  // subset's mean direction (the most typical sample), the random comparison as many random candidates.
  auto select = [&](const std::string& name, const std::vector<std::size_t>& subset) {
    std::vector<Eigen::VectorXd> e;
    std::vector<long> c;
    Eigen::VectorXd centre = Eigen::VectorXd::Zero(mean.size());
    for (const std::size_t i : subset) e.push_back(emb[i]), c.push_back(cost[i]), centre += emb[i];
    std::size_t first = 0;
    for (std::size_t k = 1; k < e.size(); ++k)
      if (e[k].dot(centre) > e[first].dot(centre)) first = k;
    calibration_set set;
    set.name = name;
    const std::vector<std::size_t> picks =
        farthest_point_selection(e, c, opt.tokens_per_set, opt.duplicate_cosine, first, &set.dropped_duplicates);
    set.mean_cosine = mean_pairwise_cosine(e, picks);
    std::vector<std::size_t> random(e.size());
    std::iota(random.begin(), random.end(), std::size_t(0));
    std::shuffle(random.begin(), random.end(), gen);
    random.resize(std::min(random.size(), picks.size()));
    set.random_mean_cosine = mean_pairwise_cosine(e, random);
    for (const std::size_t k : picks) set.samples.push_back(pool[subset[k]]);
    return set;
  };
  out.sets.push_back(select("swa", class_of_pool[0]));
  out.sets.push_back(select("full", class_of_pool[1]));
  std::vector<std::size_t> both(pool.size());
  std::iota(both.begin(), both.end(), std::size_t(0));
  out.sets.push_back(select("mixed", both));
  {  // random: candidates of both classes in a seeded random order until the budget, the farthest points' control
    std::vector<std::size_t> order = both;
    std::shuffle(order.begin(), order.end(), gen);
    calibration_set set;
    set.name = "random";
    std::vector<std::size_t> picks;
    for (std::size_t k = 0; k < order.size() && set.tokens() < opt.tokens_per_set; ++k) {
      picks.push_back(order[k]);
      set.samples.push_back(pool[order[k]]);
    }
    set.mean_cosine = set.random_mean_cosine = mean_pairwise_cosine(emb, picks);
    out.sets.push_back(std::move(set));
  }

  if (student) {
    // A random pool of both classes, scored; the highest KL first until the budget.
    std::vector<std::size_t> order = both;
    std::shuffle(order.begin(), order.end(), gen);
    std::vector<std::size_t> scored;
    long held = 0;
    for (const std::size_t i : order) {
      if (held >= opt.hard_pool_tokens) break;
      held += cost[i];
      scored.push_back(i);
    }
    std::vector<double> kl(scored.size());
    double done = 0;
    report("score", 0, double(held));
    util::for_each_index(scored.size(), [&](std::size_t k) {
      kl[k] = sample_kl(model, *student, pool[scored[k]].tokens);
#if defined(_OPENMP)
#pragma omp critical(mla_calibration_set_progress)
#endif
      {
        done += double(cost[scored[k]]);
        report("score", done, double(held));
      }
    });
    std::vector<std::size_t> rank(scored.size());
    std::iota(rank.begin(), rank.end(), std::size_t(0));
    std::stable_sort(rank.begin(), rank.end(), [&](std::size_t a, std::size_t b) { return kl[a] > kl[b]; });
    calibration_set set;
    set.name = "hard";
    long total = 0;
    std::vector<std::size_t> picks;
    for (const std::size_t k : rank) {
      if (total >= opt.tokens_per_set) break;
      calibration_sample s = pool[scored[k]];
      s.kl = kl[k];
      total += cost[scored[k]];
      picks.push_back(scored[k]);
      set.samples.push_back(std::move(s));
    }
    set.mean_cosine = mean_pairwise_cosine(emb, picks);
    std::vector<std::size_t> random = scored;
    random.resize(std::min(random.size(), picks.size()));
    set.random_mean_cosine = mean_pairwise_cosine(emb, random);
    out.sets.push_back(std::move(set));
  }
  for (auto& set : out.sets) set.batches = bucketed_batches(set.samples, opt.batch_tokens, gen);
  return out;
}

// One JSON line per sample, batch by batch: text, tokens, class, bucket, batch [, kl].
inline std::string calibration_set_jsonl(const calibration_set& set) {
  std::string out;
  for (std::size_t b = 0; b < set.batches.size(); ++b)
    for (const std::size_t i : set.batches[b].samples) {
      const calibration_sample& s = set.samples[i];
      nlohmann::ordered_json j{{"text", s.text},
                               {"tokens", s.tokens.size()},
                               {"class", length_class_name(s.cls)},
                               {"bucket", set.batches[b].bucket},
                               {"batch", b}};
      if (s.kl >= 0) j["kl"] = s.kl;
      out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
  return out;
}

inline nlohmann::ordered_json calibration_sets_summary(const calibration_sets& r) {
  const calibration_set_options& o = r.options;
  nlohmann::ordered_json j{{"window", o.window},
                           {"tokens_per_set", o.tokens_per_set},
                           {"candidate_factor", o.candidate_factor},
                           {"duplicate_cosine", o.duplicate_cosine},
                           {"embed_layer", o.embed_layer},
                           {"hard_pool_tokens", o.hard_pool_tokens},
                           {"batch_tokens", o.batch_tokens},
                           {"seed", o.seed},
                           {"paragraphs", r.paragraphs},
                           {"corpus_tokens", r.corpus_tokens},
                           {"candidates", {{"swa", r.candidates[0]}, {"full", r.candidates[1]}}},
                           {"embedded", {{"swa", r.embedded[0]}, {"full", r.embedded[1]}}}};
  for (const auto& s : r.sets) {
    nlohmann::ordered_json e{{"file", "calib_" + s.name + ".jsonl"},
                             {"samples", s.samples.size()},
                             {"tokens", s.tokens()},
                             {"swa_samples", s.count(length_class::swa)},
                             {"full_samples", s.count(length_class::full)},
                             {"batches", s.batches.size()},
                             {"mean_cosine", s.mean_cosine},
                             {"random_mean_cosine", s.random_mean_cosine},
                             {"dropped_duplicates", s.dropped_duplicates}};
    j["sets"][s.name] = e;
  }
  return j;
}

// Writes the sets into the directory `dir` (which must not exist), atomically.
inline void save_calibration_sets(const std::string& dir, const calibration_sets& r) {
  io::atomic_directory out(dir, "mla-calib");
  for (const auto& s : r.sets) out.write_file("calib_" + s.name + ".jsonl", calibration_set_jsonl(s));
  out.write_file("calib_summary.json", calibration_sets_summary(r).dump(2) + "\n");
  out.commit();
}

}  // namespace mla::convert
