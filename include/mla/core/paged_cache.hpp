// mla paged KV-cache layout (shared by the CPU and CUDA kernels): which physical page holds each token of each
// sequence.
//
// Storage of a paged cache (one tensor per cached quantity):
//   [num_pages, page_size, row_elems]      row_elems = elements cached per token
// e.g. the MLA latent cache has row_elems = latent_rank + rope_dim (c, then k_pe); a GQA K or V cache has
// row_elems = n_kv_heads * head_dim. Token t of sequence b lives in physical page
//   page_table[b][t / page_size], slot t % page_size.
// page_size is any positive value (1, 3, 16, 64, ...); sequences are ragged (own length, own pages).
//
// page_table_view is a trivially copyable bundle of raw pointers, so the same value can be handed to a
// CUDA kernel; the page-walk and tiling arithmetic below is MLA_HOST_DEVICE. Validation and the owning
// paged_layout helper are host-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "mla/core/error.hpp"
#include "mla/core/host_device.hpp"

namespace mla {

using page_index = std::int32_t;

// Non-owning description of the page bookkeeping of a batch of sequences.
struct page_table_view {
  const page_index* page_table = nullptr;  // [num_seqs, pages_per_seq]: physical page of each logical page
  const std::int32_t* seq_lens = nullptr;  // [num_seqs]: tokens cached per sequence
  int num_seqs = 0;                        // batch
  int pages_per_seq = 0;                   // row stride of page_table (most logical pages a sequence may use)
  int page_size = 0;                       // tokens per page, > 0
  int num_pages = 0;                       // physical pages in the storage tensor(s)
};

// A half-open token range [begin, end) of one sequence.
struct token_range {
  int begin = 0;
  int end = 0;
  MLA_HOST_DEVICE constexpr int size() const { return end > begin ? end - begin : 0; }
  MLA_HOST_DEVICE constexpr bool empty() const { return end <= begin; }
};

// Where one token sits in storage.
struct token_slot {
  page_index page = 0;  // physical page
  int slot = 0;         // position inside the page, [0, page_size)
};

// A run of consecutive tokens of one sequence that are also consecutive in storage (all in one page).
struct page_run {
  int token_begin = 0;  // first token of the run (sequence position)
  int count = 0;        // tokens in the run, >= 1 for a non-empty range
  page_index page = 0;  // physical page holding the run
  int slot_begin = 0;   // slot of token_begin inside the page
};

// ---- Page-walk and tiling arithmetic (host and device) ---------------------------------------------

// Pages needed to hold `tokens` tokens: ceil(tokens / page_size).
MLA_HOST_DEVICE constexpr int pages_needed(int tokens, int page_size) {
  return tokens <= 0 ? 0 : (tokens + page_size - 1) / page_size;
}

// ceil(a / b) for a >= 0, b > 0.
MLA_HOST_DEVICE constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

MLA_HOST_DEVICE inline token_slot locate_token(const page_table_view& v, int seq, int token) {
  const int logical = token / v.page_size;
  token_slot s;
  s.page = v.page_table[static_cast<std::ptrdiff_t>(seq) * v.pages_per_seq + logical];
  s.slot = token - logical * v.page_size;
  return s;
}

// Element offset of token `token` of sequence `seq` in storage [num_pages, page_size, row_elems].
MLA_HOST_DEVICE inline std::ptrdiff_t token_row_offset(const page_table_view& v, int seq, int token,
                                                       std::ptrdiff_t row_elems) {
  const token_slot s = locate_token(v, seq, token);
  return (static_cast<std::ptrdiff_t>(s.page) * v.page_size + s.slot) * row_elems;
}

// The run that starts at `token` and stops at the end of its page or at token_end, whichever is first.
// Walk a range with: for (t = r.begin; t < r.end; t += run.count) run = page_run_at(v, b, t, r.end);
MLA_HOST_DEVICE inline page_run page_run_at(const page_table_view& v, int seq, int token, int token_end) {
  const token_slot s = locate_token(v, seq, token);
  const int page_left = v.page_size - s.slot;
  const int range_left = token_end - token;
  page_run r;
  r.token_begin = token;
  r.count = page_left < range_left ? page_left : range_left;
  r.page = s.page;
  r.slot_begin = s.slot;
  return r;
}

// The keys a decode query sees. The new token is at position seq_len - 1 and already cached; key k is
// visible iff q - window < k <= q (window = 0: full causal), i.e. [max(0, seq_len - window), seq_len).
MLA_HOST_DEVICE constexpr token_range decode_visible_range(int seq_len, int window) {
  token_range r;
  r.end = seq_len > 0 ? seq_len : 0;
  r.begin = (window > 0 && r.end > window) ? r.end - window : 0;
  return r;
}

// Split `split` of `num_splits` of a range. Every split but the last covers the same number of tokens,
// a multiple of `granule` (the kernel's token tile), so tiles never straddle splits; trailing splits may
// be empty when the range is short.
MLA_HOST_DEVICE constexpr token_range split_range(token_range r, int num_splits, int split, int granule) {
  const int n = r.size();
  const int per_split = ceil_div(ceil_div(n, num_splits), granule) * granule;
  token_range s;
  const long long b = static_cast<long long>(r.begin) + static_cast<long long>(split) * per_split;
  const long long e = b + per_split;
  s.begin = b < r.end ? static_cast<int>(b) : r.end;
  s.end = e < r.end ? static_cast<int>(e) : r.end;
  return s;
}

// ---- Host-side validation ---------------------------------------------------------------------------

// Checks the view against the layout contract; `owner` prefixes the messages. With min_seq_len = 1 a
// sequence must hold at least the token being decoded.
inline void validate(const page_table_view& v, const char* owner, int min_seq_len = 0) {
  check(v.page_size > 0, owner, ": pages.page_size must be > 0, found ", v.page_size);
  check(v.num_seqs >= 0, owner, ": pages.num_seqs must be >= 0, found ", v.num_seqs);
  check(v.pages_per_seq >= 0, owner, ": pages.pages_per_seq must be >= 0, found ", v.pages_per_seq);
  check(v.num_pages >= 0, owner, ": pages.num_pages must be >= 0, found ", v.num_pages);
  if (v.num_seqs == 0) return;
  check(v.seq_lens != nullptr, owner, ": pages.seq_lens is null but pages.num_seqs = ", v.num_seqs);
  check(v.page_table != nullptr || v.pages_per_seq == 0, owner,
        ": pages.page_table is null but pages.pages_per_seq = ", v.pages_per_seq);
  for (int b = 0; b < v.num_seqs; ++b) {
    const int len = v.seq_lens[b];
    check(len >= min_seq_len, owner, ": pages.seq_lens[", b, "] = ", len, ", expected >= ", min_seq_len);
    const int need = pages_needed(len, v.page_size);
    check(need <= v.pages_per_seq, owner, ": pages.seq_lens[", b, "] = ", len, " needs ", need, " pages of page_size ",
          v.page_size, ", but pages.pages_per_seq = ", v.pages_per_seq);
    for (int p = 0; p < need; ++p) {
      const page_index phys = v.page_table[static_cast<std::ptrdiff_t>(b) * v.pages_per_seq + p];
      check(phys >= 0 && phys < v.num_pages, owner, ": pages.page_table[", b, "][", p, "] = ", phys,
            ", expected a physical page in [0, pages.num_pages = ", v.num_pages, ")");
    }
  }
}

// ---- Owning host-side layout ---------------------------------------------------------------------------

// Owns a page table and lengths; view() hands them to kernels.
struct paged_layout {
  std::vector<page_index> page_table;  // [num_seqs, pages_per_seq]; unused entries are -1
  std::vector<std::int32_t> seq_lens;  // [num_seqs]
  int pages_per_seq = 0;
  int page_size = 0;
  int num_pages = 0;

  int num_seqs() const { return static_cast<int>(seq_lens.size()); }
  page_table_view view() const {
    page_table_view v;
    v.page_table = page_table.data();
    v.seq_lens = seq_lens.data();
    v.num_seqs = num_seqs();
    v.pages_per_seq = pages_per_seq;
    v.page_size = page_size;
    v.num_pages = num_pages;
    return v;
  }
};

// Builds a layout for the given lengths. Logical pages are numbered sequence by sequence (all pages of
// sequence 0, then 1, ...); the k-th gets physical page physical_order[k] (k itself when physical_order is
// empty; pass a permutation to scatter pages). num_pages = max(total pages, physical_order.size()).
inline paged_layout make_paged_layout(const std::vector<int>& seq_lens, int page_size,
                                      const std::vector<page_index>& physical_order = {}) {
  check(page_size > 0, "mla::make_paged_layout: page_size must be > 0, found ", page_size);
  paged_layout l;
  l.page_size = page_size;
  long long total = 0;
  for (std::size_t b = 0; b < seq_lens.size(); ++b) {
    check(seq_lens[b] >= 0, "mla::make_paged_layout: seq_lens[", b, "] = ", seq_lens[b], ", expected >= 0");
    const int need = pages_needed(seq_lens[b], page_size);
    l.pages_per_seq = need > l.pages_per_seq ? need : l.pages_per_seq;
    total += need;
  }
  check(physical_order.empty() || static_cast<long long>(physical_order.size()) >= total,
        "mla::make_paged_layout: physical_order has ", physical_order.size(), " entries, expected >= ", total,
        " (the pages the lengths need)");
  check(total <= INT32_MAX, "mla::make_paged_layout: ", total, " pages exceed the int32 page index");
  l.num_pages = static_cast<int>(physical_order.empty() ? total : static_cast<long long>(physical_order.size()));
  l.seq_lens.assign(seq_lens.begin(), seq_lens.end());
  l.page_table.assign(seq_lens.size() * static_cast<std::size_t>(l.pages_per_seq), page_index{-1});
  std::size_t k = 0;
  for (std::size_t b = 0; b < seq_lens.size(); ++b) {
    const int need = pages_needed(seq_lens[b], page_size);
    for (int p = 0; p < need; ++p, ++k)
      l.page_table[b * l.pages_per_seq + p] = physical_order.empty() ? static_cast<page_index>(k) : physical_order[k];
  }
  return l;
}

}  // namespace mla
