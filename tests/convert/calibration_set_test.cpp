#include "mla/convert/calibration_set.hpp"

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "convert_test_support.hpp"
#include "expect_error.hpp"
#include "files.hpp"
#include "mla/model/decoder.hpp"

namespace {

namespace cv = mla::convert;

// A character tokenizer over a small alphabet (one token per character, ids below the test models' 97), so that
// token counts are character counts and a word starts at a space or a newline.
const std::string alphabet = " \nabcdefghijklmnopqrstuvwxyz0123456789.,";

cv::token_codec char_codec() {
  cv::token_codec c;
  c.encode = [](const std::string& s) {
    std::vector<int> ids;
    for (const char ch : s) {
      const std::size_t i = alphabet.find(ch);
      if (i == std::string::npos) throw std::runtime_error(std::string("char_codec: '") + ch + "'");
      ids.push_back(int(i));
    }
    return ids;
  };
  c.decode = [](const std::vector<int>& ids) {
    std::string s;
    for (const int i : ids) s += alphabet.at(std::size_t(i));
    return s;
  };
  return c;
}

// Documents of paragraphs of words; every word of document d starts with the letter 'a' + d and goes on with
// digits (an eighth of them then end a sentence with '.'), so that a sample's words tell which documents it came
// from. Paragraphs of 1 to 40 words (3 to 200
// characters): shorter and longer than the classes of a window of 16.
std::vector<std::vector<std::string>> random_documents(std::mt19937_64& gen, int documents) {
  std::vector<std::vector<std::string>> docs(static_cast<std::size_t>(documents));
  for (int d = 0; d < documents; ++d) {
    const int paras = std::uniform_int_distribution<int>(1, 6)(gen);
    for (int p = 0; p < paras; ++p) {
      const int words = std::uniform_int_distribution<int>(1, 40)(gen);
      std::string para;
      for (int w = 0; w < words; ++w) {
        para += (w ? " " : "") + std::string(1, char('a' + d % 26));
        const int digits = std::uniform_int_distribution<int>(1, 4)(gen);
        for (int k = 0; k < digits; ++k) para += char('0' + std::uniform_int_distribution<int>(0, 9)(gen));
        if (std::uniform_int_distribution<int>(0, 7)(gen) == 0) para += '.';  // a sentence ends
      }
      docs[std::size_t(d)].push_back(para);
    }
  }
  return docs;
}

std::vector<cv::corpus_paragraph> as_corpus(const std::vector<std::vector<std::string>>& docs) {
  std::vector<cv::corpus_paragraph> out;
  for (std::size_t d = 0; d < docs.size(); ++d)
    for (const auto& p : docs[d]) out.push_back({p, d});
  return out;
}

std::vector<std::vector<int>> tokens_of(const std::vector<cv::corpus_paragraph>& corpus, const cv::token_codec& c) {
  std::vector<std::vector<int>> out;
  for (const auto& p : corpus) out.push_back(c.encode(p.text));
  return out;
}

// Random unit vectors [n] in `dim` dimensions.
std::vector<Eigen::VectorXd> random_units(std::mt19937_64& gen, int n, int dim) {
  std::normal_distribution<double> g;
  std::vector<Eigen::VectorXd> e;
  for (int i = 0; i < n; ++i) {
    Eigen::VectorXd v(dim);
    for (int k = 0; k < dim; ++k) v[k] = g(gen);
    e.push_back(v.normalized());
  }
  return e;
}

// A small random Llama-style model (hidden 32, heads of 8, vocabulary 97).
mla::model::decoder<double> small_model(std::mt19937_64& gen, int layers) {
  mla::test::layer_spec spec;
  spec.hidden = 32, spec.head_dim = 8;
  mla::model::model_config cfg;
  mla::model::model_weights<double> w;
  mla::test::random_model(gen, layers, spec, cfg, w);
  return mla::model::decoder<double>(cfg, w);
}

BOOST_AUTO_TEST_SUITE(convert_calibration_set)

// Paragraphs split at lines of white space only (CRLF or LF), lines of a paragraph kept with "\n", trimmed; a JSONL
// record is a document of its own.
BOOST_AUTO_TEST_CASE(corpus_paragraphs_and_documents) {
  mla::test::temp_dir dir("mla-calib");
  {
    std::ofstream(dir.file("plain.txt"), std::ios::binary) << " = Title = \r\n \r\n first line\r\nsecond line \r\n"
                                                              "\t\r\n\r\nlast\n";
    std::ofstream(dir.file("docs.jsonl"), std::ios::binary)
        << "{\"text\": \"one\\n\\ntwo\"}\n\n{\"text\": \"three\"}\n";
  }
  const auto plain = cv::read_corpus(dir.file("plain.txt"));
  BOOST_TEST_REQUIRE(plain.size() == 3u);
  BOOST_TEST(plain[0].text == "= Title =");
  BOOST_TEST(plain[1].text == "first line\nsecond line");
  BOOST_TEST(plain[2].text == "last");
  BOOST_TEST((plain[0].document == 0 && plain[2].document == 0));
  const auto docs = cv::read_corpus(dir.file("docs.jsonl"));
  BOOST_TEST_REQUIRE(docs.size() == 3u);
  BOOST_TEST(docs[0].text == "one");
  BOOST_TEST(docs[1].text == "two");
  BOOST_TEST(docs[2].text == "three");
  BOOST_TEST(docs[0].document == 0u);
  BOOST_TEST(docs[1].document == 0u);
  BOOST_TEST(docs[2].document == 1u);
  mla::test::expect_error([&] { cv::read_corpus(dir.file("missing.txt")); }, {"--corpus", "missing.txt"});
  { std::ofstream(dir.file("blank.txt")) << " \n\n"; }
  mla::test::expect_error([&] { cv::read_corpus(dir.file("blank.txt")); }, {"--corpus", "blank.txt", "no text"});
}

// Every sample lies in its class's range by its own tokenisation, comes from one document, starts at a word, and
// the samples cover most of the corpus (what falls outside: the short tails dropped at document ends).
BOOST_AUTO_TEST_CASE(samples_lie_in_their_class_within_one_document) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const auto corpus = as_corpus(random_documents(gen, 40));
    const cv::token_codec codec = char_codec();
    const auto ptok = tokens_of(corpus, codec);
    long corpus_tokens = 0;
    for (const auto& t : ptok) corpus_tokens += long(t.size());
    const int window = 16;
    for (const cv::length_class c : {cv::length_class::swa, cv::length_class::full}) {
      BOOST_TEST_CONTEXT(cv::length_class_name(c)) {
        const cv::token_range r = cv::class_range(c, window);
        BOOST_TEST(r.lo == (c == cv::length_class::swa ? 8 : 32));
        BOOST_TEST(r.hi == (c == cv::length_class::swa ? 16 : 64));
        const auto samples = cv::cut_samples(corpus, ptok, codec, c, window, gen);
        BOOST_TEST_REQUIRE(!samples.empty());
        long covered = 0;
        std::size_t last_first = 0;
        for (const auto& s : samples) {
          BOOST_TEST((s.cls == c));
          BOOST_TEST(s.tokens == codec.encode(s.text));
          BOOST_TEST((long(s.tokens.size()) >= r.lo && long(s.tokens.size()) <= r.hi), s.tokens.size());
          BOOST_TEST(s.text.front() != ' ');
          BOOST_TEST(s.text.find("\n ") == std::string::npos);  // every piece starts at a word
          const char doc_letter = s.text.front();
          for (std::size_t k = 0; k < s.text.size(); ++k)
            if (k == 0 || s.text[k - 1] == ' ' || s.text[k - 1] == '\n') BOOST_TEST(s.text[k] == doc_letter);
          BOOST_TEST(corpus[s.first_paragraph].text.front() == doc_letter);
          BOOST_TEST(s.first_paragraph >= last_first);  // corpus order
          last_first = s.first_paragraph;
          covered += long(s.tokens.size());
        }
        BOOST_TEST(covered > corpus_tokens / 2, covered << " of " << corpus_tokens);
      }
    }
  }
}

// The picks are the greedy k-centre's: each pick is, among the candidates still in play, one farthest (in
// 1 - cos) from the picks before it; recomputed here from the definition. The budget stops it.
BOOST_AUTO_TEST_CASE(farthest_points_are_the_greedy_k_centre) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const int n = 80;
    const auto e = random_units(gen, n, 6);
    std::vector<long> cost;
    for (int i = 0; i < n; ++i) cost.push_back(std::uniform_int_distribution<long>(1, 20)(gen));
    const long budget = 300;
    const std::size_t first = std::uniform_int_distribution<std::size_t>(0, n - 1)(gen);
    long dropped = -1;
    const auto picks = cv::farthest_point_selection(e, cost, budget, 1.0, first, &dropped);
    BOOST_TEST(dropped == 0);
    BOOST_TEST_REQUIRE(picks.size() >= 2u);
    BOOST_TEST(picks[0] == first);
    long total = 0;
    for (std::size_t k = 0; k < picks.size(); ++k) {
      if (k > 0) {
        auto nearest = [&](std::size_t i) {
          double d = 1e300;
          for (std::size_t j = 0; j < k; ++j) d = std::min(d, 1.0 - e[i].dot(e[picks[j]]));
          return d;
        };
        const std::set<std::size_t> before(picks.begin(), picks.begin() + long(k));
        double best = -1;
        for (int i = 0; i < n; ++i)
          if (!before.count(std::size_t(i))) best = std::max(best, nearest(std::size_t(i)));
        BOOST_TEST(nearest(picks[k]) >= best - 1e-12, "pick " << k);
      }
      if (k + 1 < picks.size()) BOOST_TEST(total + cost[picks[k]] < budget);  // it went on only below the budget
      total += cost[picks[k]];
    }
    BOOST_TEST(total >= budget);
  }
}

// Planted near-duplicates (cosine > 0.999 to an original): with a threshold of 0.98 no two picks are that close
// and the dropped ones are counted; with 1 (off) the picks run until the candidates are used up.
BOOST_AUTO_TEST_CASE(near_duplicates_are_dropped) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    auto e = random_units(gen, 30, 8);
    const auto noise = random_units(gen, 30, 8);
    for (int i = 0; i < 30; ++i) e.push_back((e[std::size_t(i)] + 0.02 * noise[std::size_t(i)]).normalized());
    const std::vector<long> cost(e.size(), 1);
    long dropped = 0;
    const auto picks = cv::farthest_point_selection(e, cost, long(e.size()), 0.98, 0, &dropped);
    for (std::size_t a = 0; a < picks.size(); ++a)
      for (std::size_t b = a + 1; b < picks.size(); ++b) BOOST_TEST(e[picks[a]].dot(e[picks[b]]) <= 0.98);
    BOOST_TEST(dropped >= 30);  // one of each planted pair at least
    BOOST_TEST(long(picks.size()) + dropped == long(e.size()));
    const auto all = cv::farthest_point_selection(e, cost, long(e.size()), 1.0, 0, &dropped);
    BOOST_TEST(all.size() == e.size());
    BOOST_TEST(dropped == 0);
  }
}

// The embedding is the residual stream after layer L (taken here from the decoder's own forward through its
// layer_output observer), each row scaled to unit RMS, averaged over the rows but the first, unit length.
BOOST_AUTO_TEST_CASE(embedding_is_the_mean_normalised_state_after_the_layer) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::model::decoder<double> dec = small_model(gen, 3);
    const mla::model::model_config& cfg = dec.config();
    const auto tokens = mla::test::random_windows(gen, cfg.vocab_size, 1, 23)[0];
    struct keep : mla::model::observer<double> {
      std::vector<mla::ref::matrix<double>> out;
      void layer_output(int, const mla::ref::matrix<double>& h) override { out.push_back(h); }
    } obs;
    dec.forward(tokens, &obs);
    for (int layer = 0; layer < 3; ++layer) {
      const Eigen::MatrixXd& h = obs.out[std::size_t(layer)];
      Eigen::VectorXd want = Eigen::VectorXd::Zero(32);
      for (Eigen::Index t = 1; t < h.rows(); ++t) want += h.row(t).transpose() / std::sqrt(h.row(t).squaredNorm() / 32);
      want.normalize();
      const Eigen::VectorXd got = cv::sample_embedding(dec, tokens, layer);
      BOOST_TEST((got - want).norm() < 1e-12, "layer " << layer);
    }
    mla::test::expect_error([&] { cv::sample_embedding(dec, tokens, 3); }, {"layer 3", "[0, 3)"});
  }
}

// A sample's KL is the mean over positions of sum_v p log(p/q), computed here from the logits in long double.
BOOST_AUTO_TEST_CASE(sample_kl_is_the_mean_next_token_kl) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::model::decoder<double> teacher = small_model(gen, 2), student = small_model(gen, 2);
    const auto tokens = mla::test::random_windows(gen, teacher.config().vocab_size, 1, 17)[0];
    const auto zt = teacher.forward(tokens), zs = student.forward(tokens);
    long double sum = 0;
    for (Eigen::Index t = 0; t < zt.rows(); ++t) {
      long double zp = 0, zq = 0;
      for (Eigen::Index v = 0; v < zt.cols(); ++v)
        zp += std::exp((long double)zt(t, v)), zq += std::exp((long double)zs(t, v));
      for (Eigen::Index v = 0; v < zt.cols(); ++v) {
        const long double p = std::exp((long double)zt(t, v)) / zp, q = std::exp((long double)zs(t, v)) / zq;
        sum += p * std::log(p / q);
      }
    }
    const double want = double(sum / zt.rows());
    BOOST_TEST(want > 0.01);  // two different models
    BOOST_TEST(std::abs(cv::sample_kl(teacher, student, tokens) - want) < 1e-10 * want);
  }
}

// Batches hold one length bucket each, at most batch_tokens unless one sample alone is longer, and every
// sample exactly once.
BOOST_AUTO_TEST_CASE(batches_are_length_bucketed) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    BOOST_TEST(cv::length_bucket(1) == 0);
    BOOST_TEST(cv::length_bucket(31) == 4);
    BOOST_TEST(cv::length_bucket(32) == 5);
    std::vector<cv::calibration_sample> samples(60);
    for (auto& s : samples) s.tokens.assign(std::uniform_int_distribution<std::size_t>(3, 200)(gen), 0);
    const long cap = 150;
    const auto batches = cv::bucketed_batches(samples, cap, gen);
    std::vector<int> seen(samples.size(), 0);
    for (const auto& b : batches) {
      long tokens = 0;
      for (const std::size_t i : b.samples) {
        ++seen[i];
        BOOST_TEST(cv::length_bucket(samples[i].tokens.size()) == b.bucket);
        tokens += long(samples[i].tokens.size());
      }
      BOOST_TEST(tokens == b.tokens);
      BOOST_TEST((tokens <= cap || b.samples.size() == 1u));
    }
    for (const int s : seen) BOOST_TEST(s == 1);
  }
}

// The whole builder on a random model and a random corpus: each set holds the budget (and stops with its last
// sample), the class sets hold their class, the hard set holds recomputable KLs in falling order, the files
// read back (JSONL lines in batch order, a "tokens" field that is the text's tokenisation, mla-convert's reader
// joins them), and one seed gives the same files.
BOOST_AUTO_TEST_CASE(sets_hold_the_budget_and_read_back) {
  const std::uint64_t seed = mla::test::test_seed();
  std::mt19937_64 gen(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    const mla::model::decoder<double> teacher = small_model(gen, 2), student = small_model(gen, 2);
    const auto corpus = as_corpus(random_documents(gen, 60));
    const cv::token_codec codec = char_codec();
    cv::calibration_set_options opt;
    opt.window = 16, opt.tokens_per_set = 300, opt.seed = gen();
    const cv::calibration_sets r = cv::build_calibration_sets(corpus, codec, teacher, &student, opt);
    BOOST_TEST(r.options.embed_layer == 1);
    BOOST_TEST(r.options.batch_tokens == 64);
    BOOST_TEST_REQUIRE(r.sets.size() == 5u);
    const std::vector<std::string> names{"swa", "full", "mixed", "random", "hard"};
    for (std::size_t k = 0; k < 5; ++k) {
      const cv::calibration_set& s = r.sets[k];
      BOOST_TEST_CONTEXT(s.name) {
        BOOST_TEST(s.name == names[k]);
        BOOST_TEST(s.tokens() >= 300);
        BOOST_TEST(s.tokens() - long(s.samples.back().tokens.size()) < 300);
        if (k == 0) BOOST_TEST(s.count(cv::length_class::full) == 0);
        if (k == 1) BOOST_TEST(s.count(cv::length_class::swa) == 0);
        for (const auto& x : s.samples) BOOST_TEST(x.tokens == codec.encode(x.text));
      }
    }
    const cv::calibration_set& hard = r.sets[4];
    for (std::size_t i = 0; i < hard.samples.size(); ++i) {
      BOOST_TEST(std::abs(hard.samples[i].kl - cv::sample_kl(teacher, student, hard.samples[i].tokens)) < 1e-12);
      if (i) BOOST_TEST(hard.samples[i].kl <= hard.samples[i - 1].kl);
    }

    mla::test::temp_dir dir("mla-calib");
    cv::save_calibration_sets(dir.file("sets"), r);
    for (const auto& s : r.sets) {
      const std::string path = dir.file("sets/calib_" + s.name + ".jsonl");
      std::ifstream in(path);
      std::string line;
      std::vector<std::string> texts;
      long last_batch = -1;
      while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line);
        BOOST_TEST(j.at("tokens").get<std::size_t>() == codec.encode(j.at("text").get<std::string>()).size());
        BOOST_TEST(j.at("batch").get<long>() >= last_batch);
        last_batch = j.at("batch").get<long>();
        BOOST_TEST(j.at("bucket").get<int>() == cv::length_bucket(j.at("tokens").get<std::size_t>()));
        texts.push_back(j.at("text").get<std::string>());
      }
      BOOST_TEST(texts.size() == s.samples.size());
      std::multiset<std::string> want;
      for (const auto& x : s.samples) want.insert(x.text);
      BOOST_TEST((std::multiset<std::string>(texts.begin(), texts.end()) == want));
      BOOST_TEST(cv::read_calibration_text(path).size() > std::size_t(s.tokens()));  // joined with "\n\n"
    }
    const auto summary = nlohmann::json::parse(mla::test::read_file(dir.file("sets/calib_summary.json")));
    BOOST_TEST(summary.at("sets").at("hard").at("tokens").get<long>() == hard.tokens());

    const cv::calibration_sets again = cv::build_calibration_sets(corpus, codec, teacher, &student, opt);
    for (std::size_t k = 0; k < 5; ++k)
      BOOST_TEST(cv::calibration_set_jsonl(again.sets[k]) == cv::calibration_set_jsonl(r.sets[k]));
    mla::test::expect_error([&] { cv::save_calibration_sets(dir.file("sets"), r); }, {"already exists"});
  }
}

// A corpus too small for the budget is refused before any sample is embedded, naming the class and the numbers.
BOOST_AUTO_TEST_CASE(a_corpus_below_the_budget_is_refused) {
  std::mt19937_64 gen(7);
  const mla::model::decoder<double> dec = small_model(gen, 2);
  const auto corpus = as_corpus(random_documents(gen, 3));
  cv::calibration_set_options opt;
  opt.window = 16, opt.tokens_per_set = 100000;
  bool embedded = false;
  mla::test::expect_error(
      [&] {
        cv::build_calibration_sets(corpus, char_codec(), dec, nullptr, opt,
                                   [&](const std::string& stage, double, double) { embedded |= stage == "embed"; });
      },
      {"--corpus", "swa samples (8 to 16 tokens", "fewer than --tokens 100000"});
  BOOST_TEST(!embedded);
  opt.window = 4;
  mla::test::expect_error([&] { cv::build_calibration_sets(corpus, char_codec(), dec, nullptr, opt); },
                          {"--window must be >= 8", "found 4"});
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
