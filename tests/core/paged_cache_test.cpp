#include "mla/core/paged_cache.hpp"

#include <boost/test/unit_test.hpp>
#include <random>
#include <set>
#include <string>

#include "paged_layout_support.hpp"

using namespace mla_cpu_test;
using mla::page_run;
using mla::token_range;

BOOST_AUTO_TEST_SUITE(core_paged_cache)

BOOST_AUTO_TEST_CASE(pages_needed_and_ceil_div) {
  BOOST_TEST(mla::pages_needed(0, 16) == 0);
  BOOST_TEST(mla::pages_needed(1, 16) == 1);
  BOOST_TEST(mla::pages_needed(16, 16) == 1);
  BOOST_TEST(mla::pages_needed(17, 16) == 2);
  BOOST_TEST(mla::pages_needed(7, 1) == 7);
  BOOST_TEST(mla::pages_needed(7, 3) == 3);
  static_assert(mla::ceil_div(10, 4) == 3 && mla::ceil_div(8, 4) == 2 && mla::ceil_div(0, 4) == 0);
}

// locate_token / token_row_offset / page_run_at against a brute-force walk of shuffled layouts.
BOOST_AUTO_TEST_CASE(page_walk_matches_brute_force) {
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int page_size : {1, 3, 16, 64}) {
      std::vector<int> lens;
      for (int b = 0; b < 6; ++b) lens.push_back(std::uniform_int_distribution<int>(0, 200)(rng));
      lens.push_back(page_size);
      lens.push_back(page_size + 1);
      const auto layout = shuffled_layout(lens, page_size, 2, rng);
      const auto v = layout.view();
      BOOST_TEST_CONTEXT("page_size " << page_size) {
        BOOST_CHECK_NO_THROW(mla::validate(v, "test"));
        std::set<std::ptrdiff_t> rows_seen;  // every token of every sequence has its own storage row
        for (int b = 0; b < v.num_seqs; ++b) {
          const int len = lens[static_cast<std::size_t>(b)];
          for (int t = 0; t < len; ++t) {
            const auto s = mla::locate_token(v, b, t);
            BOOST_TEST(s.page == layout.page_table[static_cast<std::size_t>(b * v.pages_per_seq + t / page_size)]);
            BOOST_TEST(s.slot == t % page_size);
            const std::ptrdiff_t off = mla::token_row_offset(v, b, t, 5);
            BOOST_TEST(off == (static_cast<std::ptrdiff_t>(s.page) * page_size + s.slot) * 5);
            BOOST_TEST(rows_seen.insert(off).second);
          }
          // Walk random sub-ranges by runs: they tile the range, stay in one page, and agree with locate_token.
          const int lo = len ? std::uniform_int_distribution<int>(0, len - 1)(rng) : 0;
          const int hi = len ? std::uniform_int_distribution<int>(lo, len)(rng) : 0;
          int t = lo, runs = 0;
          while (t < hi) {
            const page_run r = mla::page_run_at(v, b, t, hi);
            BOOST_TEST(r.token_begin == t);
            BOOST_TEST(r.count >= 1);
            BOOST_TEST(r.slot_begin + r.count <= page_size);
            for (int c = 0; c < r.count; ++c) {
              const auto s = mla::locate_token(v, b, t + c);
              BOOST_TEST(s.page == r.page);
              BOOST_TEST(s.slot == r.slot_begin + c);
            }
            t += r.count;
            ++runs;
          }
          BOOST_TEST(t == std::max(lo, hi));
          // A run ends only at a page end or at hi, so the count is the number of pages touched.
          if (hi > lo) BOOST_TEST(runs == (hi - 1) / page_size - lo / page_size + 1);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(visible_range_follows_the_window_rule) {
  for (int len : {1, 2, 5, 128, 129, 300})
    for (int window : {0, 1, 2, 5, 128, 1000}) {
      const token_range r = mla::decode_visible_range(len, window);
      const int q = len - 1;
      for (int k = 0; k < len; ++k) {
        const bool visible = k <= q && (window == 0 || q - window < k);
        BOOST_TEST((k >= r.begin && k < r.end) == visible, "len " << len << " window " << window << " key " << k);
      }
      BOOST_TEST(r.end == len);
    }
}

// Splits tile the range in order, every non-final split is a whole number of granules, trailing ones may be empty.
BOOST_AUTO_TEST_CASE(split_range_partitions) {
  const std::uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  BOOST_TEST_CONTEXT("seed " << seed) {
    for (int trial = 0; trial < 300; ++trial) {
      const int begin = std::uniform_int_distribution<int>(0, 100)(rng);
      const token_range r{begin, begin + std::uniform_int_distribution<int>(0, 1000)(rng)};
      const int splits = std::uniform_int_distribution<int>(1, 70)(rng);
      const int granule =
          std::uniform_int_distribution<int>(0, 1)(rng) ? 16 : std::uniform_int_distribution<int>(1, 7)(rng);
      BOOST_TEST_CONTEXT("range [" << r.begin << ", " << r.end << ") splits " << splits << " granule " << granule) {
        int next = r.begin;
        int largest = 0;
        for (int s = 0; s < splits; ++s) {
          const token_range p = mla::split_range(r, splits, s, granule);
          BOOST_TEST(p.begin == next);
          BOOST_TEST(p.end >= p.begin);
          if (p.end < r.end) BOOST_TEST(p.size() % granule == 0);
          largest = std::max(largest, p.size());
          next = p.end;
        }
        BOOST_TEST(next == r.end);
        // Balanced up to one granule per split.
        BOOST_TEST(largest <= mla::ceil_div(r.size(), splits) + granule - 1);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(make_paged_layout_uses_the_given_order) {
  const auto l = mla::make_paged_layout({5, 0, 2}, 2, {4, 0, 3, 1, 2, 6});
  BOOST_TEST(l.pages_per_seq == 3);
  BOOST_TEST(l.num_pages == 6);
  const std::vector<mla::page_index> want = {4, 0, 3, -1, -1, -1, 1, -1, -1};
  BOOST_TEST(l.page_table == want, boost::test_tools::per_element());
  BOOST_CHECK_THROW(mla::make_paged_layout({5}, 2, {0, 1}), mla::error);  // needs 3 pages
  BOOST_CHECK_THROW(mla::make_paged_layout({5}, 0), mla::error);
  BOOST_CHECK_THROW(mla::make_paged_layout({-1}, 4), mla::error);
}

BOOST_AUTO_TEST_CASE(validate_names_the_bad_entry) {
  auto l = mla::make_paged_layout({5, 9}, 4);
  auto message = [&](int min_len) -> std::string {
    try {
      mla::validate(l.view(), "owner", min_len);
    } catch (const mla::error& e) {
      return e.what();
    }
    return "";
  };
  BOOST_TEST(message(1) == "");
  l.page_table[1] = 9;  // seq 0, page 1
  BOOST_TEST(message(1) == "owner: pages.page_table[0][1] = 9, expected a physical page in [0, pages.num_pages = 5)");
  l.page_table[1] = 1;
  l.seq_lens[1] = 13;
  BOOST_TEST(message(1) == "owner: pages.seq_lens[1] = 13 needs 4 pages of page_size 4, but pages.pages_per_seq = 3");
  l.seq_lens[1] = 0;
  BOOST_TEST(message(0) == "");
  BOOST_TEST(message(1) == "owner: pages.seq_lens[1] = 0, expected >= 1");
  l.page_size = -4;
  BOOST_TEST(message(0) == "owner: pages.page_size must be > 0, found -4");
}

BOOST_AUTO_TEST_SUITE_END()
